"""What a SLURM partition offers (`sinfo`) against what the launcher asks for, checked before anything is submitted.

A request that no node of the partition can satisfy would wait in the queue forever (Reason=PartitionConfig) or be
refused by sbatch with a line about gres; here it is one line that names the resource, what was asked, what the
partition has and the override to use. Checked: GPUs per node, CPUs per node (cpus_per_task x tasks_per_node),
memory per node (mem_gb), the time limit (timeout_min), the partition's and its nodes' state. Not checked (sinfo
does not say): accounts, QOS and other limits of the site; those show up as pending notices.

No `from __future__ import annotations`: Hydra's plugin scan loads this module outside sys.modules, where
dataclasses cannot resolve string annotations.
"""
import math
import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from typing import Optional

# partition (the default marked *), node, CPUs, memory (MB), gres, time limit, node state, partition availability
SINFO_FORMAT = "%P|%N|%c|%m|%G|%l|%t|%a"
# Node states (sinfo %t, flags like * ~ # stripped) that take no new job.
CLOSED_STATES = {"down", "drain", "drng", "drained", "draining", "fail", "failg", "futr", "future", "inval", "maint",
                 "npc", "boot_fail", "unk", "unknown"}


class NoScheduler(RuntimeError):
    """sinfo is missing or no controller answers it."""


class Unfit(ValueError):
    """A request that no node of the partition can satisfy; the message is the one line to show."""


@dataclass(frozen=True)
class Node:
    """One node of a partition as sinfo shows it."""

    name: str
    partition: str
    cpus: int
    mem_mb: int
    gpus: int
    limit_min: float  # the partition's time limit (math.inf for none)
    limit_text: str
    state: str
    partition_up: bool

    @property
    def open(self) -> bool:
        """Whether it takes new jobs (up, not down or draining)."""
        return self.state.rstrip("*~#!%$@^-+").lower() not in CLOSED_STATES


@dataclass(frozen=True)
class Request:
    """What each job asks for, as the launcher's config says (None: not asked)."""

    gpus: Optional[int]
    cpus: Optional[int]
    tasks: int
    mem_gb: Optional[float]
    timeout_min: Optional[int]

    def describe(self) -> str:
        """`1 CPU, 2 GB, no GPU, 60 min`."""
        cpus = self.cpus or 1
        gpus = f"{self.gpus} GPU{'s' * (self.gpus > 1)}" if self.gpus else "no GPU"
        mem = f"{self.mem_gb:g} GB" if self.mem_gb else "the partition's default memory"
        return f"{cpus} CPU{'s' * (cpus > 1)}, {mem}, {gpus}, {self.timeout_min} min"


def run_sinfo(args: list[str]) -> str:
    """sinfo's output; NoScheduler (one line) when it is missing or fails."""
    if shutil.which("sinfo") is None:
        raise NoScheduler("sinfo is not on PATH: this machine is not a SLURM login node")
    try:
        done = subprocess.run(["sinfo", *args], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise NoScheduler("sinfo did not answer within 60 s") from None
    if done.returncode != 0:
        why = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        raise NoScheduler(f"sinfo failed: {why}")
    return done.stdout


def gpu_count(gres: str) -> int:
    """GPUs in a sinfo gres field: `gpu:4`, `gpu:a100:4(S:0-1)`, `gpu:a100:2,gpu:v100:2`, `(null)` -> 0."""
    return sum(int(n) for n in re.findall(r"gpu(?::[^:,(]+)?:(\d+)", gres))


def minutes(limit: str) -> float:
    """A SLURM time limit (`infinite`, `30`, `1:00:00`, `2-00:00:00`, `1-12`, ...) in minutes."""
    text = limit.strip().lower()
    if text in ("infinite", "unlimited", "n/a", ""):
        return math.inf
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if days:  # days-hours[:minutes[:seconds]]
        h, m, s = (parts + [0, 0])[:3]
    elif len(parts) == 3:
        h, m, s = parts
    else:  # minutes[:seconds]
        h, (m, s) = 0, (parts + [0])[:2]
    return int(days or 0) * 1440 + h * 60 + m + s / 60


def parse(text: str) -> list[Node]:
    """sinfo -N -o SINFO_FORMAT lines -> nodes, the default partition's name keeping its `*`."""
    nodes = []
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 8:
            continue
        part, name, cpus, mem, gres, limit, state, avail = fields
        nodes.append(Node(name=name, partition=part, cpus=int(cpus), mem_mb=int(re.sub(r"\D.*", "", mem) or 0),
                          gpus=gpu_count(gres), limit_min=minutes(limit), limit_text=limit, state=state,
                          partition_up=avail.lower() == "up"))
    return nodes


def partition_nodes(nodes: list[Node], partition: Optional[str]) -> tuple[str, list[Node]]:
    """The partition's name and nodes (partition None: the cluster's default, marked * by sinfo); a comma list
    (`a,b`, as sbatch takes) is the union."""
    names = sorted({n.partition.rstrip("*") for n in nodes})
    if partition is None:
        default = sorted({n.partition for n in nodes if n.partition.endswith("*")})
        if not default:
            raise Unfit(f"hydra.launcher.partition null: the cluster has no default partition; set one of "
                        f"{', '.join(names)} (hydra.launcher.partition=NAME)")
        partition = default[0].rstrip("*")
    wanted = [p.strip() for p in str(partition).split(",")]
    for p in wanted:
        if p not in names:
            raise Unfit(f"hydra.launcher.partition {p!r}: no such partition; sinfo lists {', '.join(names)}")
    return ",".join(wanted), [n for n in nodes if n.partition.rstrip("*") in wanted]


def describe(nodes: list[Node]) -> str:
    """What the open nodes offer at most, in one phrase (for the launcher's first line)."""
    open_nodes = [n for n in nodes if n.open]
    gpus = max(n.gpus for n in open_nodes)
    return (f"{len(open_nodes)} node{'s' * (len(open_nodes) > 1)} up, at most {max(n.cpus for n in open_nodes)} "
            f"CPUs, {max(n.mem_mb for n in open_nodes) // 1024} GB, {gpus or 'no'} GPU{'s' * (gpus != 1)} per node, "
            f"time limit {nodes[0].limit_text}")


def fit(request: Request, nodes: list[Node], partition: str, device: str) -> tuple[Request, Optional[str]]:
    """The request as it will be submitted and a warning, or Unfit naming the first resource no open node has.

    device=auto (or cpu) on a partition without any GPU asks for none, with a warning: the job runs on the CPU.
    """
    where = f"partition {partition!r}"
    if not any(n.partition_up for n in nodes):
        raise Unfit(f"hydra.launcher.partition {partition!r} is not up (sinfo avail: down); jobs would wait "
                    "until an administrator brings it up: choose another (hydra.launcher.partition=NAME)")
    open_nodes = [n for n in nodes if n.open]
    if not open_nodes:
        states = ", ".join(f"{n.name} {n.state}" for n in nodes)
        raise Unfit(f"hydra.launcher.partition {partition!r}: no node takes jobs (sinfo: {states}); choose "
                    "another (hydra.launcher.partition=NAME) or wait until one is up")
    warning = None
    most_gpus = max(n.gpus for n in open_nodes)
    if request.gpus and request.gpus > most_gpus:
        if most_gpus == 0 and not device.startswith("cuda"):
            warning = (f"{where} has no GPU (sinfo): device={device} runs the jobs on the CPU "
                       "(hydra.launcher.gpus_per_node=0 asks for none without this warning)")
            request = replace(request, gpus=None)
        else:
            has = f"at most {most_gpus} GPU{'s' * (most_gpus != 1)} per node" if most_gpus else "no GPU"
            fix = (f"hydra.launcher.gpus_per_node={most_gpus}" if most_gpus else
                   "device=cpu hydra.launcher.gpus_per_node=0 to run on the CPU")
            raise Unfit(f"hydra.launcher.gpus_per_node {request.gpus}: {where} has {has} (sinfo); set {fix}, "
                        "or choose a partition with GPUs (hydra.launcher.partition=NAME)")
    cpus = (request.cpus or 1) * request.tasks
    most_cpus = max(n.cpus for n in open_nodes)
    if cpus > most_cpus:
        per = max(1, most_cpus // request.tasks)
        asked = f"{request.cpus} x {request.tasks} tasks = {cpus}" if request.tasks > 1 else f"{cpus}"
        raise Unfit(f"hydra.launcher.cpus_per_task {asked}: no node of {where} has {cpus} CPUs (the most: "
                    f"{most_cpus}, sinfo); set hydra.launcher.cpus_per_task={per} or less")
    most_mb = max(n.mem_mb for n in open_nodes)
    if request.mem_gb and request.mem_gb * 1024 > most_mb:  # sbatch --mem=16GB means 16 x 1024 MB
        raise Unfit(f"hydra.launcher.mem_gb {request.mem_gb:g}: no node of {where} has {request.mem_gb:g} GB of "
                    f"memory (the most: {most_mb} MB, sinfo); set hydra.launcher.mem_gb={most_mb // 1024} or less")
    limit = open_nodes[0].limit_min
    if request.timeout_min and request.timeout_min > limit:
        raise Unfit(f"hydra.launcher.timeout_min {request.timeout_min}: {where} allows at most {limit:g} min "
                    f"({open_nodes[0].limit_text}, sinfo); set hydra.launcher.timeout_min={int(limit)} or less, or "
                    "choose another partition (hydra.launcher.partition=NAME)")
    mb = (request.mem_gb or 0) * 1024
    if not any(n.cpus >= cpus and n.mem_mb >= mb and n.gpus >= (request.gpus or 0) for n in open_nodes):
        offers = "; ".join(f"{n.name}: {n.cpus} CPUs, {n.mem_mb} MB, {n.gpus} GPUs" for n in open_nodes[:4])
        raise Unfit(f"hydra.launcher: no node of {where} has {cpus} CPUs, {request.mem_gb or 0:g} GB and "
                    f"{request.gpus or 0} GPUs at once (sinfo: {offers}); lower one of them")
    return request, warning


def check(request: Request, partition: Optional[str], device: str) -> tuple[Request, str, str, Optional[str]]:
    """sinfo, then fit: (the request to submit, the partition's name, what it offers, a warning or None)."""
    name, nodes = partition_nodes(parse(run_sinfo(["--noheader", "-N", "-o", SINFO_FORMAT])), partition)
    request, warning = fit(request, nodes, name, device)
    return request, name, describe(nodes), warning
