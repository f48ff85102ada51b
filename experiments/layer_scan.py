"""`python -m experiments.layer_scan`: see conf/layer_scan.yaml; errors and exit status: experiments/app.py."""
from experiments.app import entry

if __name__ == "__main__":
    entry("layer_scan")
