"""pii: emails, phones, cards (Luhn), SSNs and IBANs (mod 97) never reach the consumer."""

from __future__ import annotations

import itertools

import pytest
from gatedriver import run
from hypothesis import given, settings
from hypothesis import strategies as st

from aqcore.errors import PolicyError
from aqcore.gates.pii import iban_ok, luhn_ok, ssn_ok

CASES = [
    ("email", ["Mail ", "john", ".smith", "@exa", "mple", ".com", " now"], "john.smith@example.com"),
    ("card", ["Card: 4111", " 1111 ", "1111 1111", "."], "4111 1111 1111 1111"),
    ("card", ["Card ", "5500-0000", "-0000-0004", " ok"], "5500-0000-0000-0004"),
    ("ssn", ["SSN ", "123", "-45-", "6789", " ok"], "123-45-6789"),
    ("iban", ["IBAN ", "GB82 WEST", " 1234 5698", " 7654 32", " thanks"], "GB82 WEST 1234 5698 7654 32"),
    ("phone", ["call ", "+1 (555)", " 123-", "4567", " today"], "+1 (555) 123-4567"),
    ("phone", ["call ", "020 7946 ", "0958", "."], "020 7946 0958"),
]


@pytest.mark.parametrize(("kind", "pieces", "secret"), CASES)
def test_redacted_whatever_the_split(kind: str, pieces: list[str], secret: str) -> None:
    outcome = run({"pii": {}}, pieces)
    assert secret not in outcome.released
    assert f"[REDACTED:{kind}]" in outcome.released
    assert outcome.released == "".join(pieces).replace(secret, f"[REDACTED:{kind}]")


@pytest.mark.parametrize(("kind", "pieces", "secret"), CASES)
def test_char_by_char_never_releases_a_digit_of_it(kind: str, pieces: list[str], secret: str) -> None:
    text = "".join(pieces)
    outcome = run({"pii": {}}, list(text))
    assert outcome.released == text.replace(secret, f"[REDACTED:{kind}]")


@pytest.mark.parametrize(("kind", "pieces", "secret"), CASES)
def test_rollback_action(kind: str, pieces: list[str], secret: str) -> None:
    outcome = run({"pii": {"on_violation": "rollback"}}, pieces)
    assert outcome.kinds() == ["rollback"]
    assert secret[:4] not in outcome.released
    assert "personal data: " + kind in outcome.verdicts[0].reason


@pytest.mark.parametrize(
    "text",
    [
        "order 12345 costs 1,250.00 dollars",
        "card 4111 1111 1111 1112 fails Luhn",
        "ssn 000-12-3456 and 666-12-3456 are invalid",
        "iban GB00 WEST 1234 5698 7654 32 bad checksum",
        "version 1.2.3 on 2024-01-15",
        "short 555-1234",
    ],
)
def test_non_pii_passes(text: str) -> None:
    outcome = run({"pii": {}}, text.split(" "))
    assert outcome.verdicts == []


def test_kinds_filter_and_template() -> None:
    table = {"pii": {"kinds": ["email"], "replacement": "<{kind} removed>"}}
    outcome = run(table, ["a@b.io ", "and 123-45-6789"])
    assert outcome.released == "<email removed> and 123-45-6789"


def test_several_in_one_unit_are_all_redacted() -> None:
    outcome = run({"pii": {}}, ["Write to a@b.io or c@d.org, or call 555-123-4567."], granularity="unit")
    assert outcome.released == "Write to [REDACTED:email] or [REDACTED:email], or call [REDACTED:phone]."


def test_final_resolves_a_pending_match() -> None:
    outcome = run({"pii": {}}, ["mail ", "x@y", ".com"])
    assert outcome.released == "mail [REDACTED:email]"


def test_halt() -> None:
    outcome = run({"pii": {"on_violation": "halt"}}, ["ok ", "x@y.com", " bye"])
    assert outcome.finish == "halted"
    assert outcome.released == "ok "


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and iban_ok("DE89370400440532013000")
    assert not iban_ok("DE89370400440532013001")
    assert ssn_ok("123-45-6789") and not ssn_ok("900-12-3456") and not ssn_ok("123-00-4567")


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"kinds": []}, "metrics.pii.kinds"),
        ({"kinds": ["passport"]}, "metrics.pii.kinds[0]"),
        ({"on_violation": "mask"}, "metrics.pii.on_violation"),
        ({"replacement": "[{type}]"}, "metrics.pii.replacement"),
        ({"redact": True}, "metrics.pii.redact"),
    ],
)
def test_bad_config(table: dict, key: str) -> None:
    with pytest.raises(PolicyError) as info:
        run({"pii": table}, [])
    assert info.value.key == key, str(info.value)


@settings(max_examples=200, deadline=None)
@given(case=st.sampled_from(CASES), cuts=st.sets(st.integers(min_value=1, max_value=60), max_size=20))
def test_random_splits_never_leak(case: tuple[str, list[str], str], cuts: set[int]) -> None:
    kind, pieces, secret = case
    text = "".join(pieces)
    bounds = [0, *sorted(c for c in cuts if c < len(text)), len(text)]
    tokens = [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    outcome = run({"pii": {}}, tokens)
    assert outcome.released == text.replace(secret, f"[REDACTED:{kind}]"), tokens
