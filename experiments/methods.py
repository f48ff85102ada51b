"""`python -m experiments.methods`: see conf/methods.yaml; errors and exit status: experiments/app.py."""
from experiments.app import entry

if __name__ == "__main__":
    entry("methods")
