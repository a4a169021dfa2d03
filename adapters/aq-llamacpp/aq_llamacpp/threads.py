"""How many threads a decode should use by default: one per physical core this process may run
on, and no more than its CPU quota.

llama-cpp-python's default is half of ``os.cpu_count()``, which assumes two hardware threads per
core. Where there are none (most VMs, ARM machines) that leaves half the cores idle: on two
cores, decoding SmolLM2 ran at 80 tok/s with its default and 127 tok/s with two threads. Extra
hyperthreads do not help llama.cpp's compute-bound kernels, so siblings count once.

A container limited by a cgroup CPU quota (Kubernetes ``limits.cpu``, ``docker --cpus``) still
sees every host CPU in its affinity mask; decoding on more threads than the quota allows makes
llama.cpp's threads wait on each other at every barrier while the quota throttles them, so the
quota caps the count.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["cpu_quota", "default_threads", "physical_cores"]

_TOPOLOGY = Path("/sys/devices/system/cpu")
_CGROUP = Path("/sys/fs/cgroup")
_PROC_CGROUP = Path("/proc/self/cgroup")


def physical_cores(topology: Path = _TOPOLOGY) -> int:
    """Physical cores among the CPUs this process may use (Linux: from sysfs); elsewhere, or
    when the topology cannot be read, every logical CPU counts as a core."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    groups: set[str] = set()
    for cpu in cpus:
        try:
            groups.add((topology / f"cpu{cpu}" / "topology" / "thread_siblings_list").read_text().strip())
        except OSError:
            return max(1, len(cpus))
    return max(1, len(groups))


def cpu_quota(cgroup: Path = _CGROUP, proc_cgroup: Path = _PROC_CGROUP) -> float | None:
    """The CPUs per period this process's cgroup may use (cgroup v2 ``cpu.max`` or v1
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), or None when there is no quota or it cannot
    be read."""
    v2_paths: list[Path] = []
    v1_paths: list[Path] = []
    try:
        for line in proc_cgroup.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            relative = path.lstrip("/")
            if controllers == "":
                v2_paths.append(cgroup / relative)
            elif "cpu" in controllers.split(","):
                v1_paths += [cgroup / controllers / relative, cgroup / "cpu" / relative]
    except (OSError, ValueError):
        pass
    for folder in [*v2_paths, cgroup]:
        try:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
        except (OSError, ValueError):
            continue
        return None if quota == "max" else _ratio(quota, period)
    for folder in [*v1_paths, cgroup / "cpu"]:
        try:
            quota = (folder / "cpu.cfs_quota_us").read_text().strip()
            period = (folder / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            continue
        return None if quota.startswith("-") else _ratio(quota, period)
    return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        value = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def default_threads() -> int:
    """One thread per physical core this process may use, capped by its CPU quota (rounded up)."""
    cores = physical_cores()
    quota = cpu_quota()
    return max(1, min(cores, math.ceil(quota))) if quota is not None else cores
