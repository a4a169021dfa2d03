"""The normalised form matching runs on, and its map back to raw offsets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aqcore.gates.normalize import NormalizedText, fold_char, normalize, normalize_phrase


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("ReFuNd", "refund"),
        ("ＲＥＦＵＮＤ", "refund"),  # fullwidth
        ("re\u200bfu\u200dnd", "refund"),  # zero-width space / joiner
        ("re\u00adfund", "refund"),  # soft hyphen
        ("re\u2060f\ufeffund", "refund"),  # word joiner, BOM
        ("re\u0301fu\u0308nd", "refund"),  # combining marks
        ("réfünd", "refund"),  # precomposed
        ("𝐫𝐞𝐟𝐮𝐧𝐝", "refund"),  # mathematical bold
        ("ⓡⓔⓕⓤⓝⓓ", "refund"),  # circled
        ("ﬁne", "fine"),  # ligature
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),  # casefold, not lower
        ("a \t\n\u3000\u00a0 b", "a b"),  # every whitespace run is one space
        ("a \u200b b", "a b"),  # an invisible character does not split a whitespace run
    ],
)
def test_normal_forms(raw: str, norm: str) -> None:
    assert normalize(raw) == norm


def test_phrase_is_stripped() -> None:
    assert normalize_phrase("  Wire   THE money \n") == "wire the money"


def test_offsets_map_back_to_raw_characters() -> None:
    raw = "Ａ\u200bb  ﬁ"
    text = NormalizedText.of(raw)
    assert text.norm == "ab fi"
    assert text.starts == [0, 2, 3, 5, 5]
    assert text.ends == [1, 3, 4, 6, 6]
    assert text.raw_len == len(raw)


def test_truncate_and_extend_match_a_fresh_build() -> None:
    raw = "Hello  Ｗorld\u00ad and  more"
    text = NormalizedText.of(raw)
    for cut in range(len(raw) + 1):
        partial = NormalizedText.of(raw)
        partial.truncate(cut)
        assert partial == NormalizedText.of(raw[:cut]), cut
        partial.extend(raw[cut:])
        assert partial == text, cut


def test_piece_does_not_change_the_text() -> None:
    text = NormalizedText.of("ab ")
    norm, starts, ends = text.piece("  C")
    assert (norm, starts, ends) == ("c", [5], [6])
    assert text.norm == "ab "


def test_fold_char_of_whitespace_and_invisibles() -> None:
    assert fold_char("\u2028") == " "
    assert fold_char("\u3164") == ""  # Hangul filler renders as nothing


@given(st.text(max_size=40), st.integers(min_value=0, max_value=40))
def test_incremental_equals_whole(raw: str, cut: int) -> None:
    cut = min(cut, len(raw))
    text = NormalizedText.of(raw[:cut])
    text.extend(raw[cut:])
    assert text == NormalizedText.of(raw)
