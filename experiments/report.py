"""`python -m experiments.report SWEEP_DIR`: rebuild report.csv and the pivot tables from a sweep's files."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nst import figures, report


def publish(sweep_dir: str | Path, *, draw: bool = True) -> str:
    """Write the report (and the figures) of a sweep directory; returns the console summary."""
    df, summary = report.write(sweep_dir)
    if draw:
        paths = figures.all_figures(df, sweep_dir)
        summary += "\nfigures: " + ", ".join(str(p) for p in paths if p.suffix == ".png")
    return summary


def cli(argv: list[str] | None = None, *, draw: bool = False) -> int:
    """Command line: one sweep directory in, files and a summary out; one-line errors."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sweep_dir", help="a multirun directory, e.g. outputs/grid/2026-01-01_12-00-00")
    args = parser.parse_args(argv)
    try:
        print(publish(args.sweep_dir, draw=draw))
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
