"""`python -m experiments.content_reconstruction`: see conf/content_reconstruction.yaml; errors and exit status: experiments/app.py."""
from experiments.app import entry

if __name__ == "__main__":
    entry("content_reconstruction")
