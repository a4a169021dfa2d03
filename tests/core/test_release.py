"""The release buffer (aqcore/loop/release.py) on its own: text goes out only at committed
boundaries, never into held or redacted text, and the emissions add up to the output."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aqcore.loop.release import ReleaseBuffer
from aqcore.models import Emission


def _buffer(seen: list[Emission] | None = None) -> ReleaseBuffer:
    return ReleaseBuffer("full", "normal", on_emit=seen.append if seen is not None else None)


def test_text_past_the_last_boundary_is_not_released_even_with_nothing_held():
    out = _buffer()
    out.commit_boundary(5)
    emission = out.release("hello wor", 0)  # "wor" belongs to no committed token yet
    assert emission is not None and emission.text == "hello"
    assert out.released == 5
    assert out.release("hello wor", 0) is None


def test_a_step_with_nothing_held_releases_everything_committed_once():
    seen: list[Emission] = []
    out = _buffer(seen)
    out.commit_boundary(2)
    first = out.release("ab", 0)
    out.commit_boundary(4)
    second = out.release("abcd", 0)
    assert [first, second] == seen
    assert [(e.text, e.offset) for e in seen] == [("ab", 0), ("cd", 2)]
    assert out.release("abcd", 0) is None
    assert out.output == "abcd"


def test_a_redaction_is_applied_and_never_split():
    out = _buffer()
    for end in (3, 6, 9):
        out.commit_boundary(end)
    assert out.add_redaction(4, 8, "[X]")  # "def " of "abc def ghi"
    # boundary 6 lies inside the redacted span: releasing up to it would split it
    held = out.release("abc def ghi"[:6], 0)
    assert held is not None and held.text == "abc " and not held.redacted
    whole = out.release("abc def ghi", 0)
    assert whole is not None and whole.text == "[X]g" and whole.redacted
    last = out.release("abc def ghi", 0, final=True)
    assert last is not None and last.text == "hi" and last.final
    assert out.output == "abc [X]ghi"


@given(st.lists(st.tuples(st.text(min_size=1, max_size=4), st.integers(0, 6)), max_size=30))
def test_emissions_are_the_committed_text_up_to_the_last_safe_boundary(steps):
    out = _buffer()
    text = ""
    for piece, hold in steps:
        text += piece
        out.commit_boundary(len(text))
        hold = min(hold, len(text))
        before = out.released
        out.release(text, hold)
        assert out.released in (0, *out.boundaries)  # only at boundaries
        if out.released > before:
            assert out.released <= len(text) - hold  # never into held text
        assert out.output == text[: out.released]
    out.release(text, 0, final=True)
    assert out.output == text
