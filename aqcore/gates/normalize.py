"""Text normalisation for matching, with a map back to raw character offsets.

Matching runs on a normalised form so that case, width, compatibility forms, invisible
characters, combining marks and runs of whitespace cannot hide a phrase:

- each raw character is decomposed with NFKD (the compatibility mapping NFKC also applies:
  fullwidth ``Ｒ`` → ``R``, ligature ``ﬁ`` → ``fi``, circled/superscript forms ...), case-folded,
  and decomposed again (case folding can produce composed characters);
- combining marks (categories Mn, Mc, Me) are dropped, so ``réfund`` and ``re\u0301fund`` both
  read ``refund``;
- format characters (category Cf: zero-width space/joiners, soft hyphen, BOM, bidi controls)
  and a few invisible fillers outside Cf are dropped;
- every run of whitespace becomes one space.

Normalising character by character (rather than the whole string at once) is what makes the
offset map exact: each normalised character knows the raw character it came from, so a match
in normalised text maps to a raw span that a rollback or redaction can cut precisely. It is
also what makes the form incremental: appending raw text never changes the normalised form
of what came before, except for the whitespace collapse, which carries one bit of state.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_left
from dataclasses import dataclass, field
from functools import lru_cache

# Invisible characters that are not in category Cf but render as nothing.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u034f\u180b\u180c\u180d\u180e")
_MARKS = frozenset(("Mn", "Mc", "Me"))
# On ASCII, fold_char(c) is " " for whitespace and c.lower() otherwise (checked by the tests).
_ASCII_SPACE = str.maketrans({chr(i): " " for i in range(128) if chr(i).isspace()})


@lru_cache(maxsize=65536)
def fold_char(char: str) -> str:
    """The normalised form of one raw character: "" when it is invisible, " " for whitespace."""
    if char.isspace():
        return " "
    if char in _INVISIBLE:
        return ""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", char).casefold())
    out = []
    for c in folded:
        category = unicodedata.category(c)
        if category in _MARKS or category == "Cf" or c in _INVISIBLE:
            continue
        out.append(" " if c.isspace() else c)
    return "".join(out)


def normalize(text: str) -> str:
    """The normalised form of ``text`` (see the module docstring). Leading and trailing
    whitespace is kept as one space so that phrase boundaries stay visible; use
    :func:`normalize_phrase` for configured phrases."""
    return NormalizedText.of(text).norm


def normalize_phrase(phrase: str) -> str:
    """A configured phrase in the same form as the text it is matched against, stripped."""
    return normalize(phrase).strip()


@dataclass
class NormalizedText:
    """The normalised form of a growing raw text, with per-character offsets back to it.

    ``starts[i]`` is the raw index of the character that produced ``norm[i]``; ``ends[i]`` is
    one past it. ``raw_len`` is the length of the raw text covered.
    """

    norm: str = ""
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    raw_len: int = 0

    @classmethod
    def of(cls, text: str) -> NormalizedText:
        out = cls()
        out.extend(text)
        return out

    def piece(self, raw: str) -> tuple[str, list[int], list[int]]:
        """What appending ``raw`` would add (normalised text, starts, ends), without appending."""
        if raw.isascii():
            # The usual token: one normalised character per raw one, unless whitespace collapses.
            folded = raw.lower().translate(_ASCII_SPACE)
            if "  " not in folded and not (folded[:1] == " " and self.norm[-1:] == " "):
                pos = self.raw_len
                return folded, list(range(pos, pos + len(raw))), list(range(pos + 1, pos + len(raw) + 1))
        chars: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        space = self.norm.endswith(" ")
        pos = self.raw_len
        for char in raw:
            folded = fold_char(char)
            for c in folded:
                if c == " ":
                    if space:
                        continue
                    space = True
                else:
                    space = False
                chars.append(c)
                starts.append(pos)
                ends.append(pos + 1)
            pos += 1
        return "".join(chars), starts, ends

    def extend(self, raw: str) -> None:
        """Append raw text."""
        norm, starts, ends = self.piece(raw)
        self.append_piece(raw, norm, starts, ends)

    def append_piece(self, raw: str, norm: str, starts: list[int], ends: list[int]) -> None:
        """Append a piece computed by :meth:`piece` for ``raw`` (saves normalising twice)."""
        self.norm += norm
        self.starts.extend(starts)
        self.ends.extend(ends)
        self.raw_len += len(raw)

    def truncate(self, raw_len: int) -> None:
        """Cut back to the first ``raw_len`` raw characters."""
        if raw_len >= self.raw_len:
            return
        keep = bisect_left(self.starts, raw_len)
        self.norm = self.norm[:keep]
        del self.starts[keep:]
        del self.ends[keep:]
        self.raw_len = raw_len

    def raw_start(self, index: int, starts: list[int] | None = None) -> int:
        """Raw offset of normalised character ``index`` (``len(norm)`` maps to ``raw_len``)."""
        starts = self.starts if starts is None else starts
        return starts[index] if index < len(starts) else self.raw_len
