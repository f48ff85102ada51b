"""`python -m experiments.transfer`: see conf/config.yaml."""
import hydra

from experiments.app import main

app = hydra.main(version_base="1.3", config_path="../conf", config_name="config")(main)

if __name__ == "__main__":
    app()
