"""Wait for a sweep's SLURM jobs: their states from `squeue`, their results from submitit's result files.

submitit's own watcher asks `sacct`, which fails on every call where accounting is off (as on many small clusters),
logs a warning each time and never learns that a cancelled job has ended: it would wait forever. `squeue
--states=all` answers without accounting and keeps finished jobs for the controller's MinJobAge (300 s by default).
The log gets one line per job state change, and one line per pending reason every `pending_notice_s` while jobs
wait longer than that.

No `from __future__ import annotations`: Hydra's plugin scan loads this module outside sys.modules, where
dataclasses cannot resolve string annotations.
"""
import logging
import math
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

log = logging.getLogger("nst")

# States after which a job never runs again (squeue's names); REQUEUED, REQUEUE_HOLD, PENDING ... are not final.
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
         "PREEMPTED", "REVOKED", "SPECIAL_EXIT"}
STARTED = {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "RESIZING"}  # started
RESULT = "result"  # the outcome of a job that wrote its result file
GONE = "GONE"  # no longer listed by squeue: it ended more than MinJobAge ago, or the controller lost it
# A job that ended without a result file gets this long for the file to appear (a shared file system can show it
# late; submitit waits 15 s) before it is taken as failed.
RESULT_GRACE_S = 10.0


@dataclass
class Tracked:
    """One submitted job as the loop sees it."""

    job_id: str  # `12_3` (array task) or `12`
    label: str  # the job's directory name
    result: Path  # submitit's result pickle, written by the job when its function returned or raised
    state: str = "SUBMITTED"
    reason: str = ""
    since: float = field(default_factory=time.monotonic)
    outcome: Optional[str] = None  # None while open; RESULT, or the state it ended in without one


def queue_states(job_ids: list[str]) -> Optional[dict[str, tuple[str, str]]]:
    """{job id: (state, pending reason)} from squeue, one line per array task; None when squeue fails."""
    arrays = sorted({j.split("_")[0] for j in job_ids})
    cmd = ["squeue", "--noheader", "--array", "--states=all", f"--jobs={','.join(arrays)}", "--format=%i|%T|%r"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        # after MinJobAge a finished job is unknown to squeue, which then fails: that is "gone", not an error
        return {} if "Invalid job id" in done.stderr else None
    states = {}
    for line in done.stdout.splitlines():
        job, _, rest = line.strip().partition("|")
        state, _, reason = rest.partition("|")
        states[job] = (state, reason)
    return states


def queue_interval(elapsed: float) -> float:
    """Seconds between two squeue calls: 1 s at first (short jobs), then slower, at most 10 s (a big cluster's
    controller serves many users); result files are looked at every second."""
    return min(10.0, 1.0 + elapsed / 10)


def step(jobs: list[Tracked], states: Optional[dict[str, tuple[str, str]]], now: float) -> list[Tracked]:
    """Update the open jobs from their result files and, when given, squeue's states; log each state change;
    return the jobs that ended now."""
    ended = []
    for job in jobs:
        if job.outcome is not None:
            continue
        if job.result.exists():
            if job.state != "COMPLETED":
                log.info("%s %s: COMPLETED", job.job_id, job.label)
            job.state, job.outcome = "COMPLETED", RESULT
            ended.append(job)
            continue
        if states is not None:  # None: squeue was not asked, or did not answer; keep what we knew
            state, reason = states.get(job.job_id, (GONE, ""))
            if state != job.state:
                if job.state != "SUBMITTED" or state != "PENDING":  # the launcher said "submitted" already
                    why = f" ({reason})" if state == "PENDING" and reason not in ("", "None") else ""
                    log.info("%s %s: %s%s", job.job_id, job.label, state, why)
                job.state, job.since = state, now
            job.reason = reason
        if (job.state in FINAL or job.state == GONE) and now - job.since >= RESULT_GRACE_S:
            job.outcome = job.state
            ended.append(job)
    return ended


def pending_notices(jobs: list[Tracked], now: float, after_s: float) -> list[str]:
    """One line per state and squeue reason for the jobs that have waited to run longer than after_s (pending,
    held, suspended, or without an answer from squeue)."""
    late: dict[tuple[str, str], list[str]] = {}
    for job in jobs:
        if job.outcome is None and job.state not in STARTED | FINAL and now - job.since > after_s:
            late.setdefault((job.state.lower(), job.reason or "none given"), []).append(job.job_id)
    return [f"{len(ids)} job{'s' * (len(ids) > 1)} {state} for over {after_s:g} s, squeue reason {reason} "
            f"({', '.join(ids[:3])}{', ...' if len(ids) > 3 else ''}); `squeue -j {ids[0].split('_')[0]}` "
            "shows the queue, Ctrl-C cancels the sweep"
            for (state, reason), ids in sorted(late.items())]


def wait(jobs: list[Tracked], ended: Callable[[Tracked], None], *, pending_notice_s: float) -> None:
    """Block until every job has a result file or has ended without one (job.outcome says which), calling
    ended(job) for each as soon as it has."""
    start = last_notice = time.monotonic()
    last_queue = -math.inf
    while True:
        now = time.monotonic()
        states = None
        if now - last_queue >= queue_interval(now - start):
            states, last_queue = queue_states([j.job_id for j in jobs if j.outcome is None]), now
        for job in step(jobs, states, now):
            ended(job)
        if all(j.outcome is not None for j in jobs):
            return
        if now - last_notice >= pending_notice_s:
            for line in pending_notices(jobs, now, pending_notice_s):
                log.warning(line)
            last_notice = now
        time.sleep(1.0)
