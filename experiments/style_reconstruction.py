"""`python -m experiments.style_reconstruction`: see conf/style_reconstruction.yaml."""
import hydra

from experiments.app import main

app = hydra.main(version_base="1.3", config_path="../conf", config_name="style_reconstruction")(main)

if __name__ == "__main__":
    app()
