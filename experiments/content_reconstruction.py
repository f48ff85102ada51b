"""`python -m experiments.content_reconstruction`: see conf/content_reconstruction.yaml."""
import hydra

from experiments.app import main

app = hydra.main(version_base="1.3", config_path="../conf", config_name="content_reconstruction")(main)

if __name__ == "__main__":
    app()
