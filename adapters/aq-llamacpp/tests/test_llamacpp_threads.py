"""The default decode thread count: one per physical core, capped by a cgroup CPU quota
(aq_llamacpp/threads.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import aq_llamacpp.threads as threads
import pytest
from aq_llamacpp.threads import cpu_quota, default_threads, physical_cores


def _topology(root: Path, siblings: dict[int, str]) -> Path:
    for cpu, group in siblings.items():
        folder = root / f"cpu{cpu}" / "topology"
        folder.mkdir(parents=True)
        (folder / "thread_siblings_list").write_text(group + "\n")
    return root


@pytest.fixture
def four_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})


def test_hyperthread_siblings_count_once(tmp_path: Path, four_cpus: None) -> None:
    root = _topology(tmp_path, {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"})
    assert physical_cores(root) == 2


def test_without_smt_every_cpu_is_a_core(tmp_path: Path, four_cpus: None) -> None:
    root = _topology(tmp_path, {0: "0", 1: "1", 2: "2", 3: "3"})
    assert physical_cores(root) == 4


def test_only_the_cpus_this_process_may_use_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _topology(tmp_path, {0: "0-1", 1: "0-1", 2: "2-3", 3: "2-3"})
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {2, 3})
    assert physical_cores(root) == 1


def test_an_unreadable_topology_counts_logical_cpus(tmp_path: Path, four_cpus: None) -> None:
    assert physical_cores(tmp_path / "missing") == 4


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_from_the_process_own_cgroup(tmp_path: Path) -> None:
    _write(tmp_path / "proc", "0::/kubepods/pod1/c1\n")
    _write(tmp_path / "fs" / "kubepods" / "pod1" / "c1" / "cpu.max", "150000 100000\n")
    assert cpu_quota(tmp_path / "fs", tmp_path / "proc") == 1.5


def test_cgroup_v2_without_a_limit_or_at_the_namespace_root(tmp_path: Path) -> None:
    _write(tmp_path / "proc", "0::/\n")
    _write(tmp_path / "fs" / "cpu.max", "max 100000\n")
    assert cpu_quota(tmp_path / "fs", tmp_path / "proc") is None
    _write(tmp_path / "fs" / "cpu.max", "200000 100000\n")
    assert cpu_quota(tmp_path / "fs", tmp_path / "proc") == 2.0


def test_cgroup_v1_quota_and_no_quota(tmp_path: Path) -> None:
    _write(tmp_path / "proc", "4:memory:/x\n1:cpu,cpuacct:/docker/abc\n")
    folder = tmp_path / "fs" / "cpu,cpuacct" / "docker" / "abc"
    _write(folder / "cpu.cfs_quota_us", "300000\n")
    _write(folder / "cpu.cfs_period_us", "100000\n")
    assert cpu_quota(tmp_path / "fs", tmp_path / "proc") == 3.0
    _write(folder / "cpu.cfs_quota_us", "-1\n")
    assert cpu_quota(tmp_path / "fs", tmp_path / "proc") is None


def test_no_cgroup_files_or_garbage_mean_no_quota(tmp_path: Path) -> None:
    assert cpu_quota(tmp_path / "fs", tmp_path / "missing") is None
    _write(tmp_path / "proc", "garbage\n")
    _write(tmp_path / "fs" / "cpu.max", "lots 0\n")
    assert cpu_quota(tmp_path / "fs", tmp_path / "proc") is None


@pytest.mark.parametrize(
    ("cores", "quota", "expected"), [(8, None, 8), (8, 2.0, 2), (8, 1.5, 2), (8, 0.5, 1), (2, 4.0, 2)]
)
def test_the_default_is_the_cores_capped_by_the_quota(
    monkeypatch: pytest.MonkeyPatch, cores: int, quota: float | None, expected: int
) -> None:
    monkeypatch.setattr(threads, "physical_cores", lambda: cores)
    monkeypatch.setattr(threads, "cpu_quota", lambda: quota)
    assert default_threads() == expected


@pytest.mark.smollm2
def test_the_adapter_decodes_on_every_physical_core_unless_told(smollm2: Any) -> None:
    from aq_llamacpp.adapter import LlamaCppAdapter

    assert smollm2.llama.n_threads == default_threads()
    with LlamaCppAdapter("smollm2", n_ctx=256, n_threads=1) as one:
        assert one.llama.n_threads == 1
