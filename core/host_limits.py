"""The CPUs and memory this process may use: the container's limits, not the host's figures.

In a container `os.cpu_count()` and `/proc/meminfo` report the host: a Space limited to 2 CPUs on a
16-core host would plan for 15 model threads and time-slice them through a quota of two. The
usable CPU count is the smallest of the affinity mask and the cgroup quota (v2 `cpu.max`, v1
`cpu.cfs_quota_us` / `cpu.cfs_period_us`), rounded up; the memory is the cgroup's limit (v2
`memory.max`, v1 `memory.limit_in_bytes`) less what the cgroup already holds, and never more than
`MemAvailable`. Each figure says where it came from, for the models' status and the start-up log.

Only the cgroup mounted at the root is read (`/sys/fs/cgroup`, the container's own under a cgroup
namespace, the default with cgroup v2); a limit set on a parent cgroup without a namespace is not seen.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CGROUP_ROOT", "MEMINFO", "CpuLimit", "MemoryLimit", "memory_limit", "usable_cpus"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
MEMINFO = Path("/proc/meminfo")
# cgroup v1 writes "no limit" as the largest page-aligned counter (9223372036854771712 on x86-64);
# anything from an exbibyte up is that, or as good as it.
_V1_UNLIMITED = 1 << 60
_MIB = 2**20


@dataclass(frozen=True)
class CpuLimit:
    """The CPUs this process may use, and which figure set them."""

    count: int
    source: str

    def describe(self) -> str:
        """Say the count and its source, e.g. `2 CPUs (cgroup cpu.max 200000/100000)`."""
        return f"{self.count} CPU{'s' if self.count != 1 else ''} ({self.source})"


@dataclass(frozen=True)
class MemoryLimit:
    """The memory this process may still take, in bytes, and which figure set it."""

    available_bytes: int
    source: str

    @property
    def available_mib(self) -> float:
        """Return the bytes in MiB."""
        return self.available_bytes / _MIB

    def describe(self) -> str:
        """Say the figure and its source, e.g. `1536 MiB (cgroup memory.max 2048 MiB less 512 MiB in use)`."""
        return f"{self.available_mib:.0f} MiB ({self.source})"


def usable_cpus(root: Path = CGROUP_ROOT, *, affinity: int | None = None) -> CpuLimit:
    """Return the usable CPU count: the affinity mask or the cgroup quota, whichever is lower, at least 1.

    Args:
        root: where the cgroup hierarchy is mounted (tests point it at a folder of fake files).
        affinity: the CPUs the scheduler lets this process run on; None reads `sched_getaffinity`.
    """
    if affinity is None:
        affinity, affinity_source = _affinity()
    else:
        affinity_source = "affinity"
    best = CpuLimit(max(1, affinity), affinity_source)
    quota = _cpu_quota(root)
    if quota is not None:
        cpus, source = quota
        if cpus < best.count:
            best = CpuLimit(max(1, cpus), source)
    return best


def memory_limit(root: Path = CGROUP_ROOT, meminfo: Path = MEMINFO) -> MemoryLimit | None:
    """Return the memory still available: the cgroup's limit less its use, or `MemAvailable` if lower.

    None where neither the cgroup nor `meminfo` says.
    """
    host = _mem_available(meminfo)
    best = MemoryLimit(host, "MemAvailable") if host is not None else None
    cgroup = _cgroup_memory(root)
    if cgroup is not None and (best is None or cgroup.available_bytes < best.available_bytes):
        best = cgroup
    return best


def _affinity() -> tuple[int, str]:
    try:
        return len(os.sched_getaffinity(0)), "affinity"
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1, "os.cpu_count"


def _cpu_quota(root: Path) -> tuple[int, str] | None:
    """Return the quota in whole CPUs (rounded up) and its source, or None where no quota is set."""
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        fields = v2.split()
        if len(fields) == 2 and fields[0] != "max":
            quota, period = _int(fields[0]), _int(fields[1])
            if quota is not None and period:
                return math.ceil(quota / period), f"cgroup cpu.max {quota}/{period}"
        return None
    for folder in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        quota_text = _read(root / folder / "cpu.cfs_quota_us")
        if quota_text is None:
            continue
        quota, period = _int(quota_text), _int(_read(root / folder / "cpu.cfs_period_us"))
        if quota is not None and quota > 0 and period:  # -1: no quota
            return math.ceil(quota / period), f"cgroup cpu.cfs_quota_us {quota}/{period}"
        return None
    return None


def _cgroup_memory(root: Path) -> MemoryLimit | None:
    limit_text = _read(root / "memory.max")
    if limit_text is not None:
        limit_name, usage_name, inactive_key = "memory.max", "memory.current", "inactive_file"
        folder = root
    else:
        folder = root / "memory"
        limit_name, usage_name, inactive_key = "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"
        limit_text = _read(folder / limit_name)
    limit = _int(limit_text)
    if limit is None or limit >= _V1_UNLIMITED:  # "max", or v1's "no limit"
        return None
    usage = _int(_read(folder / usage_name))
    if usage is None:
        return MemoryLimit(limit, f"cgroup {limit_name} {limit / _MIB:.0f} MiB")
    # Page cache counts in the cgroup's use but is given back under pressure, as MemAvailable counts it.
    usage = max(0, usage - _stat_field(folder / "memory.stat", inactive_key))
    return MemoryLimit(max(0, limit - usage),
                       f"cgroup {limit_name} {limit / _MIB:.0f} MiB less {usage / _MIB:.0f} MiB in use")


def _mem_available(meminfo: Path) -> int | None:
    text = _read(meminfo, whole=True)
    for line in (text or "").splitlines():
        if line.startswith("MemAvailable:"):
            kib = _int(line.removeprefix("MemAvailable:").split(" kB")[0])
            return kib * 1024 if kib is not None else None
    return None


def _stat_field(path: Path, key: str) -> int:
    for line in (_read(path, whole=True) or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return _int(value) or 0
    return 0


def _read(path: Path, *, whole: bool = False) -> str | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return text if whole else text.strip()


def _int(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None
