"""metrics.json, the record of one job: its schema, how it is written and read, and the resume rule.

A finished job's metrics.json holds: `status` ("ok"), the optimiser's final loss terms (`total_loss`,
`content_loss`, `style_loss`, `tv_loss`, per layer `content/<layer>`, `style/<layer>`), the same terms of the
image as saved (`saved/total_loss`, ...: clamped to [0, 1] and rounded to 8 bits), `gram_style_loss`,
`content_psnr`, `steps` (iterations run), `stop_reason` (null unless it stopped early), `evaluations`,
`seconds`, `seconds_per_iteration`, `setup_seconds`, `total_seconds`, `peak_memory_mb`, `device`, `seed`,
`beta_used`, `width`, `height`, `layers` (requested layer -> readable name), `inputs` (sha256 prefix of every
input file's bytes), `finished_at`, `versions` (with `nst_commit`, the git commit of the code, the libraries, the
CPU and, on CUDA, the GPU), the resolved
`config` and `batch`: null for a job optimised alone, else the job directories of its batch
(hydra/launcher=batched; itself included), whose rounding its result depends on; `seconds` is then the batch's,
and `total_seconds` its set-up and optimisation. A failed or interrupted job has `status` "failed" or
"interrupted", `error`, `seed`, `versions`, `config` and, when it failed or stopped once running (past its
config and inputs), what it had done: `steps`, `evaluations`, `seconds`, `peak_memory_mb`, `device`, `inputs` and
(run alone) `total_seconds`, with history.csv holding the iterations it completed. The file is written last, atomically.

Every record also says whose it is: `job`, the name of the directory it was written for; `identity`, a digest of
that name, the config as a job's identity (`comparable`) and the input hashes; `run`, the command that wrote it
($NST_RUN, set by experiments.app). Every reader takes a directory's state from `fault` (via nst.jobdir.state): a
record that says ok but is hollow, another job's (moved or swapped), altered since, or beside no whole image is
not ok. A record without `job` (written before these fields) is checked for the rest.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import math
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

import nst
from nst.config import EARLIER, NOT_IDENTITY, names_input_file
from nst.files import write_text
from nst.processes import RUN

FILE = "metrics.json"
OK = "ok"


@functools.cache
def source_commit() -> str:
    """The git commit of the checkout nst runs from, "-dirty" when its tracked files have uncommitted changes;
    "not a git checkout" for an installed copy (the resume rule does not compare it: a code change redoes nothing)."""
    root = Path(nst.__file__).resolve().parents[1]
    if not (root / ".git").exists():  # not a parent's repository: a copy installed inside another checkout
        return "not a git checkout"
    try:
        # --no-optional-locks: --dirty refreshes the index, which would take .git/index.lock beside the user's git
        out = subprocess.run(["git", "--no-optional-locks", "-C", str(root), "describe", "--always", "--dirty",
                              "--abbrev=12"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return f"unknown (git did not run: {type(e).__name__})"
    if out.returncode == 0 and out.stdout.strip():
        return out.stdout.strip()
    why = next((line.strip() for line in out.stderr.splitlines() if line.strip()), f"exit {out.returncode}")
    return f"unknown (git: {why})"


def versions(device: str = "cpu") -> dict[str, str]:
    """Versions of what produced a result, and the processor that computed it (its rounding is the machine's:
    the CPU's vector units, the GPU's kernels); Pillow resizes the inputs."""
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "absent"

    gpu = {}
    device = "cuda" if device == "auto" and torch.cuda.is_available() else str(device)
    if device.startswith("cuda") and torch.cuda.is_available():
        try:  # a failed job's record: its device may be one this machine does not have (cuda:7)
            gpu = {"gpu": torch.cuda.get_device_name(torch.device(device)), "cuda": str(torch.version.cuda),
                   "cudnn": str(torch.backends.cudnn.version())}
        except Exception as e:
            gpu = {"gpu": f"unknown ({type(e).__name__})"}
    return {"nst": nst.__version__, "nst_commit": source_commit(), "torch": torch.__version__,
            "torchvision": version("torchvision"), "numpy": version("numpy"), "pillow": version("pillow"),
            "hydra": version("hydra-core"), "python": platform.python_version(), "platform": platform.platform(),
            "cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": str(torch.get_num_threads()), **gpu}


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def job_metrics(result: Any, config: dict[str, Any], inputs: dict[str, str], *, seed: int,
                total_seconds: float, batch: list[str] | None = None) -> dict[str, Any]:
    """The metrics.json of a finished job (`result` an nst.run.JobResult)."""
    return {
        "status": OK, **result.terms, **{f"saved/{k}": v for k, v in result.saved_terms.items()},
        "gram_style_loss": result.gram_style_loss, "content_psnr": result.content_psnr,
        "steps": result.iterations, "stop_reason": result.stop_reason, "evaluations": result.evaluations,
        "seconds": result.seconds, "seconds_per_iteration": result.seconds / max(1, result.iterations),
        "setup_seconds": result.setup_seconds, "total_seconds": total_seconds,
        "peak_memory_mb": result.peak_memory_mb, "device": result.device, "seed": seed,
        "beta_used": result.beta, "width": result.size[0], "height": result.size[1], "layers": result.layers,
        "inputs": inputs, "finished_at": time.time(), "versions": versions(result.device), "config": config,
        "batch": batch,
    }


def note(error: BaseException, **fields: Any) -> BaseException:
    """Note on a running job's error what the job had done (its history rows, steps, timings, memory, input
    hashes), for its record (`failure`); a later note of a field replaces an earlier one."""
    vars(error).setdefault("job_record", {}).update(fields)
    return error


def noted(error: BaseException) -> dict[str, Any]:
    """What `note` put on an error (a copy; {} for none)."""
    return dict(vars(error).get("job_record", {}))


def failure(config: dict[str, Any], error: BaseException, status: str = "failed") -> dict[str, Any]:
    """The metrics.json of a job that failed (or was interrupted) with `error`, with what it had done (`note`; its
    history rows go to history.csv, not here)."""
    done = {k: v for k, v in noted(error).items() if k != "history"}
    return {"status": status, "error": f"{type(error).__name__}: {error}", "seed": config.get("seed"), **done,
            "versions": versions(str(done.get("device") or config.get("device", "cpu"))), "config": config,
            "total_loss": math.nan, "finished_at": time.time()}


REQUIRED = ("config", "inputs", "total_loss", "content_loss", "style_loss")  # what an ok record cannot lack


def write(out_dir: str | Path, metrics: dict[str, Any]) -> Path:
    """Write metrics.json into a job directory (atomically), stamped with whose it is (`job`, `identity`, `run`), as
    strict JSON: a NaN or infinite value (a failed job's loss) is null, which jq and JavaScript read (Python's bare
    NaN is not JSON)."""
    record = _finite({**metrics, "job": job_name(out_dir), "run": os.environ.get(RUN)})
    record["identity"] = identity(record)
    return write_text(Path(out_dir) / FILE, json.dumps(record, indent=2, allow_nan=False))


def job_name(out_dir: str | Path) -> str:
    """A job directory's own name (a link's, not its target's: a link to another job's directory is not that job)."""
    return Path(os.path.abspath(out_dir)).name


def identity(record: dict[str, Any]) -> str:
    """The digest of whose record it is: its job directory's name, its config as a job's identity, its inputs."""
    text = json.dumps([record.get("job"), comparable(record.get("config") or {}), record.get("inputs")],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fault(out_dir: str | Path, m: dict[str, Any]) -> tuple[str, str] | None:
    """Why an ok record `m` is no complete job of out_dir, as (status, why): "hollow" (it lacks what a finished job
    records), "misplaced" (another job's record: moved, copied or swapped), "altered" (its config or inputs edited
    since), "damaged" (no whole result.png); None for a complete job."""
    lacking = [k for k in REQUIRED if not isinstance(m.get(k), (dict, int, float)) or isinstance(m.get(k), bool)]
    if lacking:
        return "hollow", f"{FILE} says ok but holds no {', '.join(lacking)}"
    name = job_name(out_dir)
    if "job" in m and m["job"] != name:
        return "misplaced", f"{FILE} is the record of job {m['job']}, not of {name}"
    if "job" in m and m.get("identity") != identity(m):
        return "altered", f"{FILE}'s config or inputs were changed after its job wrote it"
    damaged = damage(out_dir)
    return ("damaged", damaged) if damaged else None


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None, in nested dicts and lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def read(out_dir: str | Path) -> dict[str, Any] | None:
    """A job directory's metrics, or None when it has none (or an unreadable one: not JSON, or not a record with
    a status, e.g. edited by hand)."""
    path = Path(out_dir) / FILE
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and "status" in m else None


def comparable(config: dict[str, Any]) -> dict[str, Any]:
    """A config as a job's identity: without the keys that are not part of it (nst.config.NOT_IDENTITY), nor the
    paths of its input files, which `inputs` compares by their bytes. Before, the paths were compared too, and the
    same images in another clone, a moved checkout or under another images_root redid (deleted first) every job."""
    config = {**EARLIER, **config}  # a record from before a key existed ran with its `earlier` value
    return {k: v for k, v in config.items() if k not in NOT_IDENTITY and not names_input_file(k, v)}


def same_run(metrics: dict[str, Any], config: dict[str, Any], inputs: dict[str, str]) -> bool:
    """Whether recorded metrics come from this resolved config and these input files' bytes."""
    return comparable(metrics.get("config") or {}) == comparable(config) and metrics.get("inputs") == inputs


def finished(out_dir: str | Path, config: dict[str, Any], inputs: dict[str, str]) -> dict[str, Any] | None:
    """The metrics of a job completed in out_dir with this config and inputs, else None (resume redoes it)."""
    m = read(out_dir)
    ok = m is not None and m.get("status") == OK and fault(out_dir, m) is None
    return m if ok and same_run(m, config, inputs) else None


def damage(out_dir: str | Path) -> str | None:
    """Why out_dir's result.png is no whole image (missing, empty, truncated: a disk that filled, a copy cut
    short), else None. Pillow's verify reads the PNG's chunks and checks their CRCs; nothing is decoded."""
    from PIL import Image

    path = Path(out_dir) / "result.png"
    if not path.is_file():
        return "result.png is missing"
    try:
        with Image.open(path) as img:
            img.verify()
    except Exception as e:
        return f"result.png is damaged ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unreadable'})"
    return None
