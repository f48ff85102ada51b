"""One job: config -> spec -> one call (nst/run.py) -> files on disk.

Written files: result.png, history.csv, config.yaml (resolved) and, last, metrics.json (nst/metrics.py; its
presence with status "ok" marks a finished job).
"""
from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from nst import metrics
from nst.engine import Progress
from nst.files import write_text
from nst.images import save_png
from nst.inputs import fingerprints
from nst.run import JobResult, run
from nst.spec import JobSpec

OUTPUTS = ("result.png", "history.csv", "config.yaml", metrics.FILE)


PATH_KEYS = ("content", "style", "init", "weights", "images_root")  # where `~` means the home directory


def expand_paths(c: dict[str, Any]) -> dict[str, Any]:
    """c with `~` expanded in its path values (a quoted '~/x.png' reaches us unexpanded; bash expands content=~/x
    only unquoted); other values of these keys (init=noise, weights=original) are left as they are."""
    def expand(v: Any) -> Any:
        return os.path.expanduser(v) if isinstance(v, str) else [expand(x) for x in v] if isinstance(v, list) else v

    return {k: expand(v) if k in PATH_KEYS else v for k, v in c.items()}


def settings(cfg: DictConfig | dict) -> dict[str, Any]:
    """The resolved config as plain Python (no `hydra` key), `~` expanded in paths."""
    c = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    c.pop("hydra", None)
    return expand_paths(c)


def history_csv(history: list[dict[str, Any]]) -> str:
    """Loss terms per iteration (rows of dicts with the same keys) as CSV text."""
    buf = io.StringIO()
    if history:
        writer = csv.DictWriter(buf, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows({k: round(v, 6) if k == "seconds" else v for k, v in row.items()} for row in history)
    return buf.getvalue()


class Bars:
    """A tqdm bar per scale, fed by nst.run's progress callback."""

    def __init__(self, name: str, enabled: bool):
        self.name, self.enabled, self.bar, self.size = name, enabled, None, None

    def __call__(self, size: int, steps: int, p: Progress) -> None:
        if self.size != size:
            self.close()
            self.bar = tqdm(total=steps, disable=not self.enabled, desc=f"{self.name} {size}px", leave=False)
            self.size = size
        self.bar.update(p.iteration - self.bar.n)
        self.bar.set_postfix(loss=f"{p.terms['total_loss']:.4g}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def write_outputs(out_dir: Path, c: dict[str, Any], result: JobResult, record: dict[str, Any]) -> None:
    """The job's files, metrics.json last."""
    save_png(result.rgb, out_dir / "result.png")
    write_text(out_dir / "history.csv", history_csv(result.history))
    write_text(out_dir / "config.yaml", OmegaConf.to_yaml(c))
    metrics.write(out_dir, record)


def run_job(cfg: DictConfig | dict, out_dir: str | Path) -> dict[str, Any]:
    """Run one job and write its files into out_dir; returns its metrics (also in metrics.json)."""
    start = time.perf_counter()
    c, out_dir = settings(cfg), Path(out_dir)
    spec = JobSpec.from_config(c)
    inputs = fingerprints(spec)
    if c.get("threads") is not None:
        torch.set_num_threads(int(c["threads"]))
    bars = Bars(out_dir.name, c.get("progress", True))
    try:
        result = run(spec, progress=bars)
    except BaseException as e:  # for its record (write_failure)
        metrics.note(e, inputs=inputs, total_seconds=time.perf_counter() - start)
        raise
    finally:
        bars.close()
    record = metrics.job_metrics(result, c, inputs, seed=spec.seed, total_seconds=time.perf_counter() - start)
    write_outputs(out_dir, c, result, record)
    return record


def finished(cfg: DictConfig | dict, out_dir: str | Path) -> dict[str, Any] | None:
    """The metrics of a job already completed in out_dir with this config and these input bytes, else None."""
    c = settings(cfg)
    return metrics.finished(out_dir, c, fingerprints(JobSpec.from_config(c)))


def other_run(cfg: DictConfig | dict, out_dir: str | Path) -> bool:
    """Whether out_dir holds the results of a run with another config or other input bytes (a failed or
    interrupted run's record holds none: the run that fixes it may reuse the directory)."""
    m = metrics.read(out_dir)
    if m is None:  # a sweep's directory (Hydra's multirun.yaml) holds its jobs' results
        return any((Path(out_dir) / name).exists() for name in (*OUTPUTS, "multirun.yaml"))
    if m.get("status") != metrics.OK and not (Path(out_dir) / "result.png").exists():
        return False
    c = settings(cfg)
    return not metrics.same_run(m, c, fingerprints(JobSpec.from_config(c))) and m.get("config") != c


def replaced_keys(cfg: DictConfig | dict, out_dir: str | Path) -> list[str] | None:
    """What differs between out_dir's complete result and this job: the config keys of its identity, then
    "<role> file" for each input file of other bytes; None when out_dir holds no complete result."""
    m = metrics.read(out_dir)  # a record with a status, or None
    if m is None or m["status"] != metrics.OK:
        return None
    c = settings(cfg)
    now, before = metrics.comparable(c), metrics.comparable(m.get("config") or {})
    inputs, recorded = fingerprints(JobSpec.from_config(c)), m.get("inputs") or {}
    roles = sorted(set(inputs) | set(recorded))
    return (sorted(k for k in set(now) | set(before) if now.get(k) != before.get(k))
            + [f"{role} file" for role in roles if inputs.get(role) != recorded.get(role)])


def clear_previous(out_dir: str | Path) -> None:
    """Remove an earlier run's files from a job directory, so that a redone job never sits beside stale ones."""
    for name in OUTPUTS:
        (Path(out_dir) / name).unlink(missing_ok=True)


def write_failure(cfg: DictConfig | dict, out_dir: str | Path, error: BaseException,
                  status: str = "failed") -> dict[str, Any]:
    """Record a failed (or interrupted) job in metrics.json so reports show it."""
    try:
        c = settings(cfg)
    except Exception:  # an unresolvable config is itself the error
        c = {}
    record = metrics.failure(c, error, status)
    rows = metrics.noted(error).get("history")
    if rows:  # the iterations it completed
        write_text(Path(out_dir) / "history.csv", history_csv(rows))
    else:  # an earlier failed run's, which figures would draw as this one's (a complete result never gets here)
        (Path(out_dir) / "history.csv").unlink(missing_ok=True)
    metrics.write(out_dir, record)
    return record
