"""`python -m experiments.report SWEEP_DIR`: rebuild report.csv and the pivot tables from a sweep's files."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

import pandas as pd
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from nst import figures, report, sweep

MULTIRUN_FILE = "multirun.yaml"  # written by Hydra into the sweep directory when a multirun starts


def invocation(sweep_dir: str | Path,
               config: DictConfig | None = None) -> tuple[dict[str, list[str]] | None, float | None]:
    """{job directory name: overrides} of the sweep launched with `config` (default: the sweep directory's last
    multirun.yaml) and when it started; (None, None) when unknown, e.g. for a directory not made by Hydra.
    The names are as conf/config.yaml's `hydra.sweep.subdir` makes them (nst/sweep.py)."""
    path = Path(sweep_dir) / MULTIRUN_FILE
    if config is None:
        if not path.is_file():
            return None, None
        try:
            config = OmegaConf.load(path)
            jobs = expand(config)
        except Exception as e:  # cut short or edited by hand: it names the jobs to report, so say which file
            why = str(e).splitlines()[0] if str(e) else ""
            raise ValueError(f"{path} cannot be read ({type(e).__name__}: {why}); --all reports every job "
                             "directory without it") from None
    else:
        jobs = expand(config)
    started = path.stat().st_mtime if path.is_file() else None
    return {sweep.dirname(job): job for job in jobs}, started


def expand(config: DictConfig) -> list[list[str]]:
    """Each job's overrides, as Hydra's basic sweeper expands the sweep (sweeper params, then the command line)."""
    params = [f"{k}={v}" for k, v in (OmegaConf.select(config, "hydra.sweeper.params") or {}).items()]
    hydra = GlobalHydra.instance()  # in a running app: its config loader, which glob() sweeps of a group need
    loader = hydra.config_loader() if hydra.is_initialized() else None
    # the command line as typed, as Hydra's sweeper reads it (`content=${images_root}/x.jpg` is not resolved: the
    # job's directory is named from that text); the sweeper params resolved, as it reads them
    task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    parsed = OverridesParser.create(config_loader=loader).parse_overrides(params + list(task))
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def publish(sweep_dir: str | Path, *, draw: bool = True, config: DictConfig | None = None,
            every_job: bool = False) -> str:
    """Write the report (and the figures) of a sweep directory: the jobs of its last sweep (multirun.yaml), or
    with `every_job` of every job directory in it; returns the console summary. A figure of an earlier report
    that this one does not draw (a grid, after a re-run of one row) is removed, as report.write does its pivots."""
    sweep_dir = Path(sweep_dir)
    jobs, started = (None, None) if every_job else invocation(sweep_dir, config)
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
    df, summary = report.write(sweep_dir, jobs, started=started)
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


class OneLineParser(argparse.ArgumentParser):
    """argparse's errors as one `error:` line with the usage in it, exit 2 (argparse printed the usage first)."""

    def error(self, message: str) -> NoReturn:
        usage = " ".join(self.format_usage().split()[1:])
        self.exit(2, f"error: {message}; usage: {usage}\n")


def cli(argv: list[str] | None = None, *, draw: bool = False) -> int:
    """Command line: one sweep directory in, files and a summary out; one-line errors."""
    from experiments import figures as figures_app

    parser = OneLineParser(prog=f"python -m experiments.{'figures' if draw else 'report'}",
                           description=figures_app.__doc__ if draw else __doc__)
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
    except Exception as e:  # a bug: one line, as experiments.app gives it
        from experiments.app import describe_job_error

        print(f"error: {describe_job_error(e)}", file=sys.stderr)
        return 1
    bad = int((status != "ok").sum())
    if bad:  # as the sweep's own command: a report of failed, missing or interrupted jobs is not a success
        print(f"error: {bad} job{'s' * (bad > 1)} of {len(status)} not ok (above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
