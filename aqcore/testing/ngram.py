"""An interpolated trigram language model over the sub-word vocabulary of :mod:`.tokenizer`.

Small enough to build from a text in well under a second, real enough to give a proper
next-token distribution over its whole vocabulary, so aq's loop and gate metrics can be tested
without a neural model. The same text and parameters always give the same model.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources

import numpy as np

from .tokenizer import EOS_ID, Tokenizer, learn_pieces

# Every training reply is read after this prompt, which is also how the adapters' chat template
# ends, so the model learns how a reply starts and the first generated token is in-distribution.
REPLY_PREFIX = "assistant: "
FORMAT_VERSION = 1

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class NgramParams:
    """Everything besides the text that decides the model; part of its digest."""

    merges: int = 300
    lambdas: tuple[float, float, float] = (0.6, 0.3, 0.1)  # trigram, bigram, unigram
    add_k: float = 0.01  # unigram smoothing, so every token (every byte) has some probability

    def __post_init__(self) -> None:
        if self.merges < 0:
            raise ValueError(f"merges must be >= 0 (got {self.merges})")
        if len(self.lambdas) != 3 or min(self.lambdas) <= 0 or abs(sum(self.lambdas) - 1.0) > 1e-9:
            raise ValueError(f"lambdas must be three positive weights summing to 1 (got {self.lambdas})")
        if self.add_k <= 0:
            raise ValueError(f"add_k must be > 0 (got {self.add_k})")


def paragraphs(text: str) -> list[str]:
    """The replies of a training text: paragraphs split on blank lines, inner lines joined."""
    out = []
    for block in _PARAGRAPH_BREAK.split(text.strip()):
        joined = " ".join(line.strip() for line in block.splitlines() if line.strip())
        if joined:
            out.append(joined)
    return out


class NgramLM:
    """Interpolated trigram model: p(c|a,b) = l3*p3(c|a,b) + l2*p2(c|b) + l1*p1(c).

    p3 and p2 are maximum-likelihood estimates, p1 is add-k smoothed over the whole vocabulary.
    Where a context was never seen its weight goes to the lower orders, so every distribution is
    proper and gives every token a non-zero probability.
    """

    cache_size = 4096
    """How many trigram contexts keep their log-prob vector (bigram-only ones are a table row)."""

    def __init__(self, text: str, params: NgramParams | None = None) -> None:
        self.params = params or NgramParams()
        replies = paragraphs(text)
        if not replies:
            raise ValueError("the training text has no paragraphs")
        self.text = text
        self.tokenizer = Tokenizer(learn_pieces("\n\n".join(replies), self.params.merges))
        self.digest = _digest(text, self.params)
        sequences = [[*self.tokenizer.encode(REPLY_PREFIX + reply), EOS_ID] for reply in replies]
        self._estimate(sequences)
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def pieces(self) -> tuple[bytes, ...]:
        return self.tokenizer.pieces

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.size

    def encode(self, text: str | bytes) -> list[int]:
        return self.tokenizer.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    def _estimate(self, sequences: list[list[int]]) -> None:
        size = self.vocab_size
        _, l2, l1 = self.params.lambdas
        unigram = np.zeros(size, dtype=np.float64)
        bigram = np.zeros((size, size), dtype=np.float64)
        trigram: dict[tuple[int, int], dict[int, int]] = {}
        for seq in sequences:
            np.add.at(unigram, seq, 1.0)
            np.add.at(bigram, (seq[:-1], seq[1:]), 1.0)
            for a, b, c in zip(seq, seq[1:], seq[2:], strict=False):
                following = trigram.setdefault((a, b), {})
                following[c] = following.get(c, 0) + 1
        p1 = (unigram + self.params.add_k) / (unigram.sum() + self.params.add_k * size)
        rows = bigram.sum(axis=1, keepdims=True)
        p2 = np.divide(bigram, rows, out=np.zeros_like(bigram), where=rows > 0)
        # Without a trigram the mix is l2*p2 + l1*p1 renormalised; without a bigram, p1 alone.
        lower = np.where(rows > 0, (l2 * p2 + l1 * p1) / (l2 + l1), p1)
        self._lower_prob = lower.astype(np.float64)
        self._lower_log = np.log(lower).astype(np.float32)
        self._lower_log.setflags(write=False)
        # Sparse: per seen context (a, b) the sorted following ids and their probabilities.
        self._trigram: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        for ctx, following in sorted(trigram.items()):
            ids = sorted(following)
            counts = np.array([following[c] for c in ids], dtype=np.float64)
            self._trigram[ctx] = (np.array(ids, dtype=np.intp), counts / counts.sum())

    def log_probs(self, context: Sequence[int]) -> np.ndarray:
        """Natural-log next-token probabilities after ``context``: float32, shape (vocab_size,).

        The array is read-only and may be shared with later calls; copy it to modify it.
        """
        if not context:
            start: np.ndarray = self._lower_log[EOS_ID]  # a text starts as if after <eos>
            return start
        b = int(context[-1])
        if len(context) == 1 or (int(context[-2]), b) not in self._trigram:
            row: np.ndarray = self._lower_log[b]
            return row
        key = (int(context[-2]), b)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        ids, probs = self._trigram[key]
        l3 = self.params.lambdas[0]
        mixed = (1.0 - l3) * self._lower_prob[b]
        mixed[ids] += l3 * probs
        out: np.ndarray = np.log(mixed).astype(np.float32)
        out.setflags(write=False)
        with self._lock:
            self._cache[key] = out
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out

    def greedy(self, context: Sequence[int], max_tokens: int) -> list[int]:
        """The most likely continuation (ties go to the lowest id), up to ``max_tokens`` or EOS."""
        return self.sample(context, max_tokens, rng=None, temperature=0.0)

    def sample(
        self,
        context: Sequence[int],
        max_tokens: int,
        rng: np.random.Generator | None,
        temperature: float = 1.0,
    ) -> list[int]:
        """Draw a continuation of ``context`` (greedy when ``temperature`` is 0), ending at EOS
        (included) or after ``max_tokens`` tokens."""
        ctx = list(context)
        out: list[int] = []
        for _ in range(max_tokens):
            token = self.next_token(ctx, rng, temperature)
            out.append(token)
            ctx.append(token)
            if token == EOS_ID:
                break
        return out

    def next_token(self, context: Sequence[int], rng: np.random.Generator | None, temperature: float) -> int:
        """One token after ``context``: the argmax when ``temperature`` is 0, else a draw from
        the distribution sharpened or flattened by ``temperature``."""
        logp = self.log_probs(context)
        if temperature <= 0.0 or rng is None:
            return int(np.argmax(logp))
        scaled = logp.astype(np.float64) / temperature
        probs = np.exp(scaled - scaled.max())
        # Inverse-CDF draw: one uniform per step, the same on every platform for a given seed.
        cdf = np.cumsum(probs)
        return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(cdf) - 1))


def _digest(text: str, params: NgramParams) -> str:
    h = hashlib.sha256()
    h.update(f"aq-test-ngram/{FORMAT_VERSION}\n".encode())
    h.update(json.dumps(asdict(params), sort_keys=True).encode())
    h.update(b"\n")
    h.update(text.encode("utf-8"))
    return h.hexdigest()


def bundled_text() -> str:
    """The bundled training text: replies of a customer-support agent and short narratives."""
    return resources.files(__package__).joinpath("corpus.txt").read_text(encoding="utf-8")


_models: dict[str, NgramLM] = {}
_models_lock = threading.Lock()


def model_for_text(text: str, params: NgramParams | None = None) -> NgramLM:
    """The model of ``text``, built once per process and shared (models are immutable)."""
    params = params or NgramParams()
    key = _digest(text, params)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            model = _models[key] = NgramLM(text, params)
        return model


def default_model() -> NgramLM:
    """The model of the bundled corpus, built once per process."""
    return model_for_text(bundled_text())
