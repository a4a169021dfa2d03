"""The test LM is a proper, deterministic next-token distribution that writes corpus English."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import aqcore.testing
from aqcore.models import Message
from aqcore.testing import EOS_ID, NgramLM, NgramParams, bundled_text, chat_prompt, default_model
from aqcore.testing.ngram import REPLY_PREFIX


def _logsumexp(x: np.ndarray) -> float:
    x64 = x.astype(np.float64)
    m = x64.max()
    return float(m + np.log(np.exp(x64 - m).sum()))


@pytest.fixture(scope="module")
def lm() -> NgramLM:
    return default_model()


def _contexts(lm: NgramLM) -> list[list[int]]:
    prompt = lm.encode(chat_prompt([Message(role="user", content="Where is my refund?")]))
    return [
        [],
        [EOS_ID],
        lm.encode(" order"),
        prompt,  # ends in a trigram seen in training
        lm.encode(REPLY_PREFIX + "Thank you for"),
        lm.encode("zzqx \u00e9\u4e2d"),  # bytes and contexts never seen
        [5, 6],
    ]


def test_log_probs_are_a_proper_distribution(lm: NgramLM) -> None:
    for context in _contexts(lm):
        logp = lm.log_probs(context)
        assert logp.dtype == np.float32 and logp.shape == (lm.vocab_size,)
        assert np.isfinite(logp).all() and (logp < 0).all()
        assert _logsumexp(logp) == pytest.approx(0.0, abs=1e-5), context


def test_log_probs_are_read_only(lm: NgramLM) -> None:
    logp = lm.log_probs(lm.encode(REPLY_PREFIX))
    with pytest.raises(ValueError):
        logp[0] = 0.0


def test_trigram_context_sharpens_the_bigram(lm: NgramLM) -> None:
    # "for your" is frequent in the corpus; after "Thank you for" the model should expect " your".
    logp = lm.log_probs(lm.encode(REPLY_PREFIX + "Thank you for"))
    assert lm.pieces[int(np.argmax(logp))] == b" your"


def test_two_builds_are_equal() -> None:
    text = bundled_text()
    a, b = NgramLM(text), NgramLM(text)
    assert a is not b
    assert a.pieces == b.pieces
    assert a.digest == b.digest
    for context in _contexts(a):
        assert a.log_probs(context).tobytes() == b.log_probs(context).tobytes()


def test_digest_depends_on_text_and_parameters() -> None:
    text = bundled_text()
    base = NgramLM(text).digest
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert NgramLM(text + "\n\nOne more reply.").digest != base
    assert NgramLM(text, NgramParams(merges=200)).digest != base
    assert NgramLM(text, NgramParams(lambdas=(0.5, 0.4, 0.1))).digest != base


def test_build_is_stable_across_processes_and_hash_seeds() -> None:
    code = (
        "import hashlib; from aqcore.testing import default_model; m = default_model(); "
        "h = hashlib.sha256(b''.join(m.pieces)); "
        "[h.update(m.log_probs(m.encode(t)).tobytes()) for t in ('', 'assistant: ', 'your order A12')]; "
        "print(m.digest, h.hexdigest())"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=Path(aqcore.testing.__file__).parents[2],  # importable without installing
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outs) == 1


def test_default_model_is_built_once_per_process() -> None:
    assert default_model() is default_model()


def _corpus_words() -> set[str]:
    return set(re.findall(r"[a-z]+", bundled_text().lower()))


def test_greedy_decoding_writes_corpus_english(lm: NgramLM) -> None:
    prompt = lm.encode(chat_prompt([Message(role="user", content="My order is late.")]))
    out = lm.greedy(prompt, 80)
    assert out[-1] == EOS_ID, "greedy decoding should end its reply"
    text = lm.decode(out)
    words = re.findall(r"[a-z]+", text.lower())
    assert len(words) >= 3
    assert set(words) <= _corpus_words()
    assert text[0].isupper() and text.rstrip()[-1] in ".!?"


def test_sampling_is_seeded_and_mostly_corpus_words(lm: NgramLM) -> None:
    prompt = lm.encode(chat_prompt([Message(role="user", content="Can I get a refund?")]))
    first = lm.sample(prompt, 60, np.random.default_rng(7), temperature=0.8)
    assert first == lm.sample(prompt, 60, np.random.default_rng(7), temperature=0.8)
    samples = [lm.decode(lm.sample(prompt, 60, np.random.default_rng(s), 0.8)) for s in range(8)]
    assert len(set(samples)) > 1
    words = [w for s in samples for w in re.findall(r"[a-z]+", s.lower())]
    known = sum(w in _corpus_words() for w in words)
    assert known / len(words) >= 0.8


def test_bad_parameters_and_text_are_rejected() -> None:
    with pytest.raises(ValueError, match="lambdas"):
        NgramParams(lambdas=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="merges"):
        NgramParams(merges=-1)
    with pytest.raises(ValueError, match="add_k"):
        NgramParams(add_k=0)
    with pytest.raises(ValueError, match="no paragraphs"):
        NgramLM(" \n\n \n")
