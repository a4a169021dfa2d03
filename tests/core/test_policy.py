"""Policy loading: validation errors name the dotted key and the file; the digest is canonical."""

from __future__ import annotations

import pytest

from aqcore.errors import PolicyError
from aqcore.policy import load_policy

from .metrics_for_tests import Phrase


def write(tmp_path, text: str):
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


METRICS = {"phrase": Phrase}


def test_a_valid_policy_loads_with_validated_metric_settings(tmp_path):
    path = write(tmp_path, """
name = "support"
version = "2"
max_rollbacks = 4
[budgets]
invocation = 40.0
[metrics.phrase]
phrase = "secret"
[degraded]
max_tokens = 16
[degraded.metrics.phrase]
phrase = "other"
""")
    policy = load_policy(path, METRICS)
    assert policy.name == "support" and policy.max_rollbacks == 4
    assert policy.budgets.invocation == 40.0 and policy.budgets.agent is None
    assert policy.metrics["phrase"].phrase == "secret"
    degraded = policy.degraded_policy(METRICS)
    assert degraded.max_tokens == 16
    assert degraded.metrics["phrase"].phrase == "other"
    assert degraded.digest == policy.digest


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ('name = "p"\nmax_rolbacks = 3\n', "max_rolbacks", "unknown key"),
        ('name = "p"\nmax_rollbacks = "many"\n', "max_rollbacks", "integer"),
        ('name = "p"\n[budgets]\ninvocation = -1.0\n', "budgets.invocation", "greater than 0"),
        ('name = "p"\n[metrics.phrase]\nphrase = 3\n', "metrics.phrase.phrase", "string"),
        ('name = "p"\n[metrics.phrase]\nphrases = "x"\n', "metrics.phrase.phrases", "unknown key"),
        ('name = "p"\n[metrics.nosuch]\n', "metrics.nosuch", "unknown gate metric 'nosuch'"),
        ('name = "p"\n[degraded.metrics.nosuch]\nx = 1\n', "degraded.metrics.nosuch", "unknown gate metric"),
        ('name = "p"\n[degraded.metrics.phrase]\nphrase = 1\n', "degraded.metrics.phrase.phrase", "string"),
        ('name = "p"\n[degraded]\non_state_unavailable = "panic"\n', "degraded.on_state_unavailable", "degrade"),
        ('name = "p"\n[units]\nsize = 0\n', "units.size", "positive"),
        ('version = "1"\n', "name", "top-level name"),
    ],
)
def test_bad_policies_name_the_key_and_the_file(tmp_path, text, key, message):
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as err:
        load_policy(path, METRICS)
    assert err.value.key == key
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "missing.toml", METRICS)
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(write(tmp_path, "name = \n"), METRICS)


def test_digest_is_canonical_and_changes_with_content(tmp_path):
    a = load_policy(write(tmp_path, 'name = "p"\nmax_tokens = 10\n[budgets]\nagent = 5.0\n'), METRICS)
    reordered = write(
        tmp_path, '# same document, other order and layout\nmax_tokens   = 10\nname = "p"\n[budgets]\nagent=5.0\n'
    )
    b = load_policy(reordered, METRICS)
    assert a.digest == b.digest
    c = load_policy(write(tmp_path, 'name = "p"\nmax_tokens = 11\n[budgets]\nagent = 5.0\n'), METRICS)
    assert c.digest != a.digest
    assert len(a.digest) == 64


def test_a_policy_built_in_code_has_a_degraded_profile_too():
    from aqcore.policy import Policy

    policy = Policy(name="in-code", max_tokens=40)
    degraded = policy.degraded_policy(METRICS)
    assert degraded.name == "in-code"
    assert degraded.max_tokens == 40
