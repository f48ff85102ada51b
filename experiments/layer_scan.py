"""`python -m experiments.layer_scan`: see conf/layer_scan.yaml."""
import hydra

from experiments.app import main

app = hydra.main(version_base="1.3", config_path="../conf", config_name="layer_scan")(main)

if __name__ == "__main__":
    app()
