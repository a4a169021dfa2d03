"""The default decode thread count: one per physical core (aq_llamacpp/threads.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from aq_llamacpp.threads import physical_cores


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


@pytest.mark.smollm2
def test_the_adapter_decodes_on_every_physical_core_unless_told(smollm2: Any) -> None:
    from aq_llamacpp.adapter import LlamaCppAdapter

    assert smollm2.llama.n_threads == physical_cores()
    with LlamaCppAdapter("smollm2", n_ctx=256, n_threads=1) as one:
        assert one.llama.n_threads == 1
