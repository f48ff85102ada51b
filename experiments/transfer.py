"""`python -m experiments.transfer`: see conf/config.yaml; errors and exit status: experiments/app.py."""
from experiments.app import entry

if __name__ == "__main__":
    entry("config")
