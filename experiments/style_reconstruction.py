"""`python -m experiments.style_reconstruction`: see conf/style_reconstruction.yaml; errors and exit status: experiments/app.py."""
from experiments.app import entry

if __name__ == "__main__":
    entry("style_reconstruction")
