"""Which characters can begin a regex match (aqcore/gates/common.py: Starters), the witness the
deny_phrases and commitments fast paths use to skip a regex scan."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aqcore.gates.common import Starters, compile_regex

PATTERNS = [
    r"\b(?:cvv|cvc|security code)\s*(?:is|:)\s*\d",
    r"refund (?:of|amount of|amount is|is) \$?(?P<value>\d[\d,]*(?:\.\d{2})?)",
    r"order (?:id |number |no\. ?|#)?(?P<order_id>[A-Z]{2,4}-\d{3,10})",
    r"^ab",
    r"\s*\d",
    r"(?:x|yz)?w",
    r"[^a-c]q",
    r"\mcat",
    r"a{2,}b",
]


@pytest.mark.parametrize(
    "pattern",
    [r"(?<=a)b", r"(?<!a)b", r"(?=ab)a", r"(?!b)a", r"\Ba", r"\Ma", r"\Ga", r"a\Kb", r"\Xa",
     r"(?r)ab", r"(?:cvv){e<=1}", r"(x)?(?(1)a|b)"],
)
def test_context_sensitive_patterns_are_always_scanned(pattern: str) -> None:
    begins = Starters(compile_regex(pattern))
    assert not begins.exact
    assert begins.any_in("zzz")


def test_a_plain_pattern_names_its_first_characters() -> None:
    begins = Starters(compile_regex(PATTERNS[0], ignore_case=True))
    assert begins.exact
    assert [c for c in "abcdsxyzCS 0:" if begins.any_in(c)] == ["c", "s", "C", "S"]
    assert not begins.any_in("the money")  # no c, no s
    assert begins.any_in("the cost")


@settings(max_examples=1500, deadline=None)
@given(
    pattern=st.sampled_from(PATTERNS),
    ignore_case=st.booleans(),
    text=st.text(alphabet=st.sampled_from("abcqwxyzCVSsvioder fnum#AB-12.$: \n"), max_size=24),
)
def test_every_match_begins_at_a_counted_character(pattern: str, ignore_case: bool, text: str) -> None:
    compiled = compile_regex(pattern, ignore_case=ignore_case)
    begins = Starters(compiled)
    for position in range(len(text)):
        match = compiled.match(text, position, partial=True)
        if match is not None and match.end() > match.start():
            assert begins.any_in(text[position]), (pattern, text, position)
