"""The container's CPU and memory limits, read from a cgroup tree (a folder of the kernel's files, faked)."""

from __future__ import annotations

from pathlib import Path

from core.host_limits import memory_limit, usable_cpus
from inference.budget import model_threads

GIB = 2**30


def cgroup(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (path under the cgroup root: contents) as the kernel would show them."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    return root


def meminfo(tmp_path: Path, available_kib: int) -> Path:
    path = tmp_path / "meminfo"
    path.write_text(f"MemTotal:       65000000 kB\nMemFree:         1000000 kB\nMemAvailable:   {available_kib} kB\n")
    return path


def test_usable_cpus_v2_quota_below_the_cores_wins(tmp_path):
    limit = usable_cpus(cgroup(tmp_path, {"cpu.max": "200000 100000"}), affinity=16)
    assert (limit.count, limit.describe()) == (2, "2 CPUs (cgroup cpu.max 200000/100000)")


def test_usable_cpus_v2_fractional_quota_rounds_up(tmp_path):
    assert usable_cpus(cgroup(tmp_path, {"cpu.max": "150000 100000"}), affinity=16).count == 2
    assert usable_cpus(cgroup(tmp_path, {"cpu.max": "10000 100000"}), affinity=16).count == 1


def test_usable_cpus_v2_max_means_the_affinity(tmp_path):
    limit = usable_cpus(cgroup(tmp_path, {"cpu.max": "max 100000"}), affinity=6)
    assert (limit.count, limit.source) == (6, "affinity")


def test_usable_cpus_quota_above_the_affinity_keeps_the_affinity(tmp_path):
    limit = usable_cpus(cgroup(tmp_path, {"cpu.max": "800000 100000"}), affinity=3)
    assert limit.describe() == "3 CPUs (affinity)"


def test_usable_cpus_v1_quota(tmp_path):
    root = cgroup(tmp_path, {"cpu,cpuacct/cpu.cfs_quota_us": "250000", "cpu,cpuacct/cpu.cfs_period_us": "100000"})
    assert usable_cpus(root, affinity=32).describe() == "3 CPUs (cgroup cpu.cfs_quota_us 250000/100000)"


def test_usable_cpus_v1_no_quota(tmp_path):
    root = cgroup(tmp_path, {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"})
    assert usable_cpus(root, affinity=4).count == 4


def test_usable_cpus_without_a_cgroup_reads_the_affinity(tmp_path):
    assert usable_cpus(tmp_path / "absent", affinity=5).describe() == "5 CPUs (affinity)"
    assert usable_cpus(tmp_path / "absent").count >= 1  # this machine's own mask


def test_model_threads_follow_the_quota_not_the_host(tmp_path):
    assert model_threads(usable_cpus(cgroup(tmp_path, {"cpu.max": "200000 100000"}), affinity=64).count) == 1


def test_memory_limit_v2_is_the_limit_less_the_working_set(tmp_path):
    root = cgroup(tmp_path / "cg", {"memory.max": str(2 * GIB), "memory.current": str(GIB),
                                    "memory.stat": f"anon 100\nfile 300\ninactive_file {GIB // 2}\nactive_file 5"})
    limit = memory_limit(root, meminfo(tmp_path, 60_000_000))
    assert limit.available_bytes == 2 * GIB - GIB // 2
    assert limit.describe() == "1536 MiB (cgroup memory.max 2048 MiB less 512 MiB in use)"


def test_memory_limit_v2_max_falls_back_to_mem_available(tmp_path):
    root = cgroup(tmp_path / "cg", {"memory.max": "max", "memory.current": str(GIB)})
    limit = memory_limit(root, meminfo(tmp_path, 4 * 1024 * 1024))
    assert (limit.available_bytes, limit.source) == (4 * GIB, "MemAvailable")


def test_memory_limit_above_mem_available_keeps_mem_available(tmp_path):
    root = cgroup(tmp_path / "cg", {"memory.max": str(64 * GIB)})
    assert memory_limit(root, meminfo(tmp_path, 1024 * 1024)).describe() == "1024 MiB (MemAvailable)"


def test_memory_limit_v1(tmp_path):
    root = cgroup(tmp_path / "cg", {"memory/memory.limit_in_bytes": str(GIB),
                                    "memory/memory.usage_in_bytes": str(GIB // 4),
                                    "memory/memory.stat": "cache 0\ntotal_inactive_file 0"})
    limit = memory_limit(root, meminfo(tmp_path, 60_000_000))
    assert limit.describe() == "768 MiB (cgroup memory.limit_in_bytes 1024 MiB less 256 MiB in use)"


def test_memory_limit_v1_unlimited_is_ignored(tmp_path):
    root = cgroup(tmp_path / "cg", {"memory/memory.limit_in_bytes": "9223372036854771712"})
    assert memory_limit(root, meminfo(tmp_path, 2048)).source == "MemAvailable"


def test_memory_limit_without_a_cgroup_or_meminfo_is_unknown(tmp_path):
    assert memory_limit(tmp_path / "absent", tmp_path / "no-meminfo") is None
    root = cgroup(tmp_path / "cg", {"memory.max": str(GIB)})
    assert memory_limit(root, tmp_path / "no-meminfo").describe() == "1024 MiB (cgroup memory.max 1024 MiB)"
