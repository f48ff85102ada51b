"""`python -m experiments.figures SWEEP_DIR [--all]`: rebuild report.csv and the figures (grid/strip, losses)."""
import sys

from experiments.report import cli

if __name__ == "__main__":
    sys.exit(cli(draw=True, description=__doc__))
