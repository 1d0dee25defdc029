"""How many CPUs this process may really use: the default thread count of serve, generate,
check and quickstart, and the default build parallelism.

os.cpu_count() counts the machine's CPUs; a container or `taskset` usually gets fewer, and
threads beyond those only wait for each other (llama.cpp's threads spin at barriers). The
answer is the smallest of the affinity mask and every CPU quota (cgroup v2 cpu.max, v1
cpu.cfs_quota_us / cpu.cfs_period_us) on the way from this process's cgroup up to the root of
the mount, rounded up, and at least 1."""

import math
import os
from pathlib import Path

PROC_CGROUP = Path("/proc/self/cgroup")


def _v2_quota(folder: Path) -> float | None:
    quota, period = (folder / "cpu.max").read_text().split()  # "max 100000" or "150000 100000"
    return None if quota == "max" else int(quota) / int(period)


def _v1_quota(folder: Path) -> float | None:
    quota = int((folder / "cpu.cfs_quota_us").read_text())  # -1: no quota
    return quota / int((folder / "cpu.cfs_period_us").read_text()) if quota > 0 else None


# hierarchy: (does a /proc/self/cgroup line's controller list name it, where it is mounted, quota reader)
HIERARCHIES = {
    "v2": (lambda controllers: controllers == "", Path("/sys/fs/cgroup"), _v2_quota),
    "v1": (lambda controllers: "cpu" in controllers.split(","), Path("/sys/fs/cgroup/cpu"), _v1_quota),
}


def _folders(mount: Path, inside: str) -> list[Path]:
    """The cgroup's folder and its ancestors up to the mount. In a container the cgroup's path may
    name the host's hierarchy, absent here; the mount itself is then the container's cgroup."""
    leaf = mount / inside.lstrip("/")
    return [leaf, *leaf.parents[: len(leaf.parents) - len(mount.parents)]]


def quota_cpus() -> float | None:
    """The tightest cgroup CPU quota in CPUs (1.5 = one and a half), or None without one."""
    try:
        lines = PROC_CGROUP.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        fields = line.split(":", 2)  # hierarchy id : controllers : path
        if len(fields) != 3:
            continue
        _, controllers, inside = fields
        for names, mount, read in HIERARCHIES.values():
            if not names(controllers):
                continue
            for folder in _folders(mount, inside):
                try:
                    quotas.append(read(folder))
                except (OSError, ValueError):  # no such file at this level, or unreadable
                    pass
    quotas = [q for q in quotas if q is not None]
    return min(quotas) if quotas else None


def affinity_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def usable_cpus() -> int:
    quota = quota_cpus()
    return max(1, min(affinity_cpus(), math.ceil(quota) if quota is not None else math.inf))
