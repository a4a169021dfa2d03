"""A byte-level sub-word tokenizer for the test language model.

The vocabulary is ``<eos>`` (id 0), all 256 single bytes (ids 1-256, so any UTF-8 text can be
encoded) and multi-byte pieces learned by BPE-style merges over the training text. Encoding is
greedy longest match, which splits words into sub-word tokens the way real tokenizers do and
lets tests exercise phrases that cross token boundaries.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from itertools import pairwise

EOS_ID = 0
EOS_PIECE = b"<eos>"

# Merges never cross these pre-token boundaries: a word with its leading space, a run of digits,
# one punctuation character, or a run of whitespace (the GPT-2 convention).
_PRETOKEN = re.compile(rb" ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]|\s+")

_Word = tuple[bytes, ...]
_Pair = tuple[bytes, bytes]


class Tokenizer:
    """Greedy longest-match tokenizer over a fixed vocabulary of byte strings.

    ``pieces[i]`` is the bytes of token ``i``; ``pieces[0]`` is the ``<eos>`` marker, which is
    never produced by :meth:`encode` and decodes to nothing.
    """

    def __init__(self, pieces: Sequence[bytes]) -> None:
        if not pieces or pieces[EOS_ID] != EOS_PIECE:
            raise ValueError(f"pieces[0] must be {EOS_PIECE!r}")
        missing = [b for b in range(256) if bytes([b]) not in pieces]
        if missing:
            raise ValueError(f"pieces lack {len(missing)} single bytes (first: {missing[0]:#04x})")
        self.pieces: tuple[bytes, ...] = tuple(pieces)
        self._ids: dict[bytes, int] = {}
        for i, piece in enumerate(self.pieces):
            if i != EOS_ID:
                if piece in self._ids:
                    raise ValueError(f"duplicate piece {piece!r} at ids {self._ids[piece]} and {i}")
                self._ids[piece] = i
        self._max_len = max(len(p) for p in self.pieces[1:])

    @property
    def size(self) -> int:
        return len(self.pieces)

    def encode(self, text: str | bytes) -> list[int]:
        """Token ids of ``text`` (str as UTF-8): at each position the longest matching piece."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        ids: list[int] = []
        i, n = 0, len(data)
        lookup = self._ids
        while i < n:
            for length in range(min(self._max_len, n - i), 0, -1):
                token = lookup.get(data[i : i + length])
                if token is not None:
                    ids.append(token)
                    i += length
                    break
        return ids

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes of ``ids``; ``<eos>`` adds nothing."""
        return b"".join(self.pieces[i] for i in ids if i != EOS_ID)

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``; invalid UTF-8 (a cut multi-byte character) becomes U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")


def learn_pieces(text: str, merges: int) -> list[bytes]:
    """The vocabulary learned from ``text``: ``<eos>``, the 256 bytes, then up to ``merges``
    merged pieces in the order they were learned.

    Deterministic: among equally frequent pairs the lexicographically smallest merges first.
    """
    word_counts = Counter(_PRETOKEN.findall(text.encode("utf-8")))
    # Sorted so that every later iteration order (and so every tie) is the same on every run.
    words: list[list[bytes]] = [[bytes([b]) for b in w] for w in sorted(word_counts)]
    freqs = [word_counts[w] for w in sorted(word_counts)]
    pair_counts: Counter[_Pair] = Counter()
    where: defaultdict[_Pair, set[int]] = defaultdict(set)
    for index, (symbols, freq) in enumerate(zip(words, freqs, strict=True)):
        for pair in pairwise(symbols):
            pair_counts[pair] += freq
            where[pair].add(index)

    learned: list[bytes] = []
    for _ in range(merges):
        best = _best_pair(pair_counts)
        if best is None:
            break
        merged = best[0] + best[1]
        learned.append(merged)
        for index in sorted(where.pop(best, ())):
            symbols, freq = words[index], freqs[index]
            for pair in pairwise(symbols):
                pair_counts[pair] -= freq
            words[index] = symbols = _merge(symbols, best, merged)
            for pair in pairwise(symbols):
                pair_counts[pair] += freq
                where[pair].add(index)
        pair_counts = +pair_counts  # drop pairs whose count fell to zero
    pieces = [EOS_PIECE, *(bytes([b]) for b in range(256))]
    seen = set(pieces)
    for piece in learned:  # a merge can rebuild a piece learned before; keep the first
        if piece not in seen:
            seen.add(piece)
            pieces.append(piece)
    return pieces


def _best_pair(pair_counts: Counter[_Pair]) -> _Pair | None:
    best: _Pair | None = None
    best_count = 1  # a pair seen once is not worth a token
    for pair, count in pair_counts.items():
        if count > best_count or (count == best_count and best is not None and pair < best):
            best, best_count = pair, count
    return best


def _merge(symbols: list[bytes], pair: _Pair, merged: bytes) -> list[bytes]:
    out: list[bytes] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
            out.append(merged)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out
