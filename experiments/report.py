"""`python -m experiments.report SWEEP_DIR`: rebuild report.csv and the pivot tables from a sweep's files."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from experiments.errors import OneLineParser
from experiments.sweeps import MULTIRUN_FILE, invocation
from nst import figures, jobdir, report
from nst.processes import RUN

def publish(sweep_dir: str | Path, *, draw: bool = True, config: DictConfig | None = None,
            every_job: bool = False, started: float | None = None) -> str:
    """Write the report (and the figures) of a sweep directory: the jobs of its last sweep (multirun.yaml), or
    with `every_job` of every job directory in it; returns the console summary. A figure of an earlier report
    that this one does not draw (a grid, after a re-run of one row) is removed, as report.write does its pivots.
    `started`: when the command that ran the sweep started, for the summary's "this run: ..." (nst.report.counts);
    None from the `report` command, which ran nothing."""
    sweep_dir = Path(sweep_dir)
    jobs, _ = (None, None) if every_job else invocation(sweep_dir, config)
    listed = jobs is None and sweep_dir.is_dir()
    inner = sorted(d.name for d in sweep_dir.iterdir() if (d / MULTIRUN_FILE).is_file()) \
        if listed else []  # sweeps inside: a folder such as outputs/transfer/
    found = report.job_dirs(sweep_dir) if listed else []
    if listed and not found and ((sweep_dir / ".hydra").is_dir() or (sweep_dir / "metrics.json").is_file()):
        raise ValueError(f"{str(sweep_dir)!r} is one job's directory; report the sweep (or folder of runs) it "
                         f"belongs to: python -m experiments.report {sweep_dir.absolute().parent}")
    if inner and not found:
        raise ValueError(f"{str(sweep_dir)!r} holds sweeps, not jobs ({', '.join(inner[:3])}"
                         f"{', ...' if len(inner) > 3 else ''}); report each: python -m experiments.report "
                         f"{sweep_dir / inner[0]}")
    df, summary = report.write(sweep_dir, jobs, started=started, run=os.environ.get(RUN))
    if inner:  # its single runs are reported; the sweeps beside them are not mixed in
        summary += (f"\nwarning: the sweeps in {sweep_dir} are not in this report ({', '.join(inner[:3])}"
                    f"{', ...' if len(inner) > 3 else ''}); report each on its own")
    if draw:
        paths = figures.all_figures(df, sweep_dir)
        for stale in set(figures.drawn_paths(sweep_dir)) - set(paths):  # an earlier report's (another shape)
            stale.unlink(missing_ok=True)
        summary += "\nfigures: " + ", ".join(str(p) for p in paths if p.suffix == ".png")
    elif any(p.is_file() for p in figures.drawn_paths(sweep_dir)):
        summary += (f"\nthe figures in {sweep_dir} are not redrawn and may show an earlier report; "
                    f"python -m experiments.figures {sweep_dir}{' --all' * every_job} redraws them")
    return summary


def cli(argv: list[str] | None = None, *, draw: bool = False, description: str | None = None) -> int:
    """Command line: one sweep directory in, files and a summary out; one-line errors."""
    parser = OneLineParser(prog=f"python -m experiments.{'figures' if draw else 'report'}",
                           description=description or __doc__)
    parser.add_argument("sweep_dir", help="a multirun directory, e.g. outputs/grid/2026-01-01_12-00-00")
    parser.add_argument("--all", action="store_true", dest="every_job",
                        help="every job directory in it, not only those of its last sweep (multirun.yaml): e.g. "
                             "after a re-run of part of a sweep into the same directory")
    args = parser.parse_args(argv)
    try:
        sweep_dir = Path(args.sweep_dir).expanduser()  # quoted '~/...' too, as the entry points expand it
        print(publish(sweep_dir, draw=draw, every_job=args.every_job))
        status = pd.read_csv(sweep_dir / "report.csv", usecols=["status"])["status"]
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a read-only directory: said with the file it could not write
        if not jobdir.write_error(e):
            raise
        print(f"error: {jobdir.describe(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug: one line, as the apps give it
        print(f"error: {jobdir.describe(e)}", file=sys.stderr)
        return 1
    bad = int((status != "ok").sum())
    if bad:  # as the sweep's own command: a report of failed, missing or interrupted jobs is not a success
        print(f"error: {bad} job{'s' * (bad > 1)} of {len(status)} not ok (above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
