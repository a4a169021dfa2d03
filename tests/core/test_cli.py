"""The ``aq`` command line (aqcore/cli/): the generate contract, policy check, plugins, state
commands, and errors as one clear line with exit code 2."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import rfc8785
import structlog

import aqcore
from aqcore.cli.main import main
from aqcore.models import Turn
from aqcore.state.journal import Journal
from aqcore.state.update import StateUpdate

REPO = Path(aqcore.__file__).resolve().parent.parent

POLICY = """\
name = "cli-policy"
version = "3"
refusal = "Sorry."

[metrics.deny_phrases]
phrases = ["password"]
"""

# the test LM answers "hello" greedily with "Thank you for your patience."
DENY_PATIENCE = """\
name = "deny-patience"

[metrics.deny_phrases]
phrases = ["patience"]
"""


@pytest.fixture(autouse=True)
def _cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run each command in an empty directory (no stray aq.toml) and undo the CLI's logging
    set-up, which binds structlog to the captured stderr of this test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AQ_CONFIG", raising=False)
    monkeypatch.delenv("AQ_DISABLE_PLUGINS", raising=False)
    yield
    structlog.reset_defaults()


@pytest.fixture
def aq(capsys: pytest.CaptureFixture[str]):
    """``aq(*argv) -> (exit code, stdout, stderr)``, run in-process."""

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return path


@pytest.fixture
def store() -> str:
    return f"memory:cli-{uuid.uuid4().hex}"


def generate_args(policy: Path, store: str, *extra: str, prompt: str = "hello", conversation: str = "C") -> list[str]:
    return [
        "generate", prompt, "--adapter", "test", "--model", "default", "--policy", str(policy),
        "--agent", "A", "--conversation", conversation, "--store", store, *extra,
    ]


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# -- generate -------------------------------------------------------------------------------

def test_generate_json_prints_one_object_with_the_contract_fields(aq, policy, store):
    code, out, _ = aq(*generate_args(policy, store, "--json"))
    assert code == 0
    assert out.count("\n") == 1  # one line, one object
    doc = json.loads(out)
    for field in ("text", "finish_reason", "state_status", "confidence", "verdicts", "entropy_spent",
                  "tokens", "receipt"):
        assert field in doc, field
    assert isinstance(doc["text"], str) and doc["text"]
    assert doc["finish_reason"] == "stop"
    assert (doc["state_status"], doc["confidence"]) == ("full", "normal")
    assert doc["verdicts"] == {}
    assert set(doc["entropy_spent"]) == {"invocation", "conversation", "agent"}
    spent = doc["entropy_spent"]["invocation"]
    assert spent > 0
    assert doc["entropy_spent"]["conversation"] == doc["entropy_spent"]["agent"] == pytest.approx(spent)
    assert isinstance(doc["tokens"], int) and doc["tokens"] > 0
    assert doc["receipt"] is None  # no lineage configured
    assert doc["scope"]["agent"] == "A" and doc["scope"]["conversation"] == "C"
    assert doc["policy"]["name"] == "cli-policy"
    assert doc["adapter"] == "test"


def test_entropy_spent_accumulates_per_scope_across_generations(aq, policy, store):
    first = json.loads(aq(*generate_args(policy, store, "--json"))[1])
    second = json.loads(aq(*generate_args(policy, store, "--json", prompt="where is my order"))[1])
    other = json.loads(aq(*generate_args(policy, store, "--json", conversation="C2"))[1])
    s1, s2, s3 = (d["entropy_spent"]["invocation"] for d in (first, second, other))
    assert second["entropy_spent"]["conversation"] == pytest.approx(s1 + s2)
    assert second["entropy_spent"]["agent"] == pytest.approx(s1 + s2)
    # a new conversation of the same agent: the conversation starts over, the agent does not
    assert other["entropy_spent"]["conversation"] == pytest.approx(s3)
    assert other["entropy_spent"]["agent"] == pytest.approx(s1 + s2 + s3)


def test_generate_json_counts_verdicts_per_metric_and_kind(aq, tmp_path, store):
    policy = tmp_path / "deny.toml"
    policy.write_text(DENY_PATIENCE)
    code, out, _ = aq(*generate_args(policy, store, "--json"))
    assert code == 0
    doc = json.loads(out)
    assert "patience" not in doc["text"].lower()
    assert doc["verdicts"] == {"deny_phrases": {"rollback": doc["rollbacks"]}}
    assert doc["rollbacks"] >= 1


def test_streaming_prints_the_governed_text(aq, policy, store):
    _, out, _ = aq(*generate_args(policy, store, "--json", conversation="J"))
    expected = json.loads(out)["text"]
    code, out, err = aq(*generate_args(policy, store, conversation="S"))
    assert code == 0
    assert out.strip() == expected
    assert "finish=stop" in err


def test_generate_with_lineage_puts_the_receipt_in_the_json(aq, policy, store, tmp_path):
    assert aq("keys", "generate", "--dir", str(tmp_path / "keys"))[0] == 0
    key = next((tmp_path / "keys").glob("*.pem"))
    lineage = tmp_path / "lineage.jsonl"
    code, out, _ = aq(*generate_args(policy, store, "--json", "--lineage", str(lineage), "--key", str(key)))
    assert code == 0
    receipt = json.loads(out)["receipt"]
    assert isinstance(receipt, dict)
    assert receipt["key_id"] == key.stem
    assert receipt["chain"] == "default:A:C"
    code, out, _ = aq("lineage", "verify", str(lineage), "--keyring", str(tmp_path / "keys" / "keyring.json"))
    assert code == 0, out


def test_source_files_enter_the_conversation_state(aq, policy, store, tmp_path):
    source = tmp_path / "facts.txt"
    source.write_text("Order C295 ships on 12 May.")
    assert aq(*generate_args(policy, store, "--json", "--source", str(source)))[0] == 0
    code, out, _ = aq("state", "show", "--agent", "A", "--conversation", "C", "--store", store, "--json")
    assert code == 0
    assert json.loads(out)["conversation"]["sources"] == ["Order C295 ships on 12 May."]


# -- input errors ---------------------------------------------------------------------------

def test_missing_source_file_is_exit_2_naming_the_file(aq, policy, store):
    code, out, err = aq(*generate_args(policy, store, "--json", "--source", "no-such-file.txt"))
    assert code == 2
    assert out == ""
    assert "no-such-file.txt" in one_error_line(err)


def test_unknown_adapter_is_exit_2_naming_it_and_the_available_ones(aq, policy, store):
    args = generate_args(policy, store)
    args[args.index("test")] = "no-such-adapter"
    code, out, err = aq(*args)
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert "'no-such-adapter'" in line
    assert "test" in line.split("available", 1)[1] and "test-units" in line


@pytest.mark.parametrize("document, key", [
    ('name = "p"\n[metrics.deny_phrases]\nphrasez = ["x"]\n', "metrics.deny_phrases.phrasez"),
    ('name = "p"\nmax_rollbackz = 3\n', "max_rollbackz"),
    ('name = "p"\nmax_rollbacks = "many"\n', "max_rollbacks"),
    ('name = "p"\n[metrics.no_such_metric]\n', "metrics.no_such_metric"),
])
def test_bad_policy_key_is_exit_2_with_the_dotted_key_and_the_file(aq, tmp_path, store, document, key):
    bad = tmp_path / "bad-policy.toml"
    bad.write_text(document)
    for argv in (generate_args(bad, store), ["policy", "check", str(bad)]):
        code, out, err = aq(*argv)
        assert code == 2 and out == ""
        line = one_error_line(err)
        assert repr(key) in line
        assert str(bad) in line


def test_missing_policy_file_and_missing_policy_flag(aq, store):
    code, _, err = aq(*generate_args(Path("absent.toml"), store))
    assert code == 2 and "absent.toml" in one_error_line(err)
    code, _, err = aq("generate", "hi", "--adapter", "test", "--agent", "A", "--conversation", "C", "--store", store)
    assert code == 2 and "--policy" in one_error_line(err)


def test_no_adapter_is_an_error_not_a_silent_test_model(aq, policy, store):
    code, out, err = aq("generate", "hi", "--policy", str(policy), "--agent", "A", "--conversation", "C",
                        "--store", store)
    assert code == 2 and out == ""
    assert "--adapter" in one_error_line(err) and "aq plugins" in one_error_line(err)


@pytest.mark.parametrize("flag, value", [("--agent", "bad id!"), ("--conversation", "x/y"), ("--tenant", "t t")])
def test_bad_ids_are_exit_2_with_one_clear_line(aq, policy, store, flag, value):
    args = generate_args(policy, store, "--json")
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    code, out, err = aq(*args)
    assert code == 2 and out == ""
    assert repr(value) in one_error_line(err)


def test_bad_agent_id_in_state_show_is_exit_2(aq, store):
    code, out, err = aq("state", "show", "--agent", "bad id!", "--conversation", "C", "--store", store)
    assert code == 2 and out == ""
    assert "'bad id!'" in one_error_line(err)


def test_bad_agent_id_in_state_delete_is_exit_2(aq, store):
    code, out, err = aq("state", "delete", "--agent", "bad id!", "--conversation", "C", "--store", store, "--yes")
    assert code == 2 and out == ""
    assert "'bad id!'" in one_error_line(err)


def test_bad_sampling_values_are_exit_2(aq, policy, store):
    for extra in (["--temperature", "-1"], ["--top-p", "0"], ["--max-tokens", "0"]):
        code, _, err = aq(*generate_args(policy, store, *extra))
        assert code == 2, extra
        one_error_line(err)


def test_bad_store_url_is_exit_2(aq, policy):
    code, _, err = aq(*generate_args(policy, "no-scheme"))
    assert code == 2
    assert "'no-scheme'" in one_error_line(err)


def test_no_command_prints_help_and_exits_2(aq):
    code, _, err = aq()
    assert code == 2
    assert "generate" in err


def test_disabling_the_test_lm_plugin_removes_its_adapters(aq, policy, store, monkeypatch):
    monkeypatch.setenv("AQ_DISABLE_PLUGINS", "test-lm")
    code, out, err = aq(*generate_args(policy, store))
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert "no adapter named 'test'" in line
    code, out, _ = aq("plugins", "--json")
    entry = next(p for p in json.loads(out) if p["name"] == "test-lm")
    assert entry["status"] == "disabled"
    assert entry["provides"] == []


# -- policy check and plugins ---------------------------------------------------------------

def test_policy_check_prints_the_digest(aq, policy):
    expected = hashlib.sha256(rfc8785.dumps(tomllib.loads(POLICY))).hexdigest()
    code, out, _ = aq("policy", "check", str(policy))
    assert code == 0
    assert expected in out and "cli-policy" in out
    code, out, _ = aq("policy", "check", str(policy), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["digest"] == expected
    assert (doc["name"], doc["version"], doc["metrics"]) == ("cli-policy", "3", ["deny_phrases"])


def test_policy_digest_changes_with_the_content(aq, policy, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text(POLICY.replace('"password"', '"passwd"'))
    first = json.loads(aq("policy", "check", str(policy), "--json")[1])["digest"]
    second = json.loads(aq("policy", "check", str(other), "--json")[1])["digest"]
    assert first != second


def test_plugins_json_lists_each_plugin_with_what_it_provides(aq):
    code, out, _ = aq("plugins", "--json")
    assert code == 0
    plugins = json.loads(out)
    assert isinstance(plugins, list) and plugins
    for entry in plugins:
        assert {"name", "distribution", "version", "provides"} <= set(entry)
        assert isinstance(entry["provides"], list)
    by_name = {p["name"]: p for p in plugins}
    test_lm = by_name["test-lm"]
    assert test_lm["distribution"] == "aqcore"
    assert {"adapter:test", "adapter:test-units"} <= set(test_lm["provides"])
    assert "metric:deny_phrases" in by_name["builtin-metrics"]["provides"]
    assert "state:memory" in by_name["memory-state"]["provides"]


def test_plugins_table_names_the_plugins(aq):
    code, out, _ = aq("plugins")
    assert code == 0
    assert "test-lm" in out and "adapter:test" in out
    from aqcore.sampling import NATIVE

    expected = "log-partition kernel: native" if NATIVE else "log-partition kernel: numpy"
    assert expected in out


# -- state ----------------------------------------------------------------------------------

def test_state_show_after_generate_shows_the_turn(aq, policy, store):
    _, out, _ = aq(*generate_args(policy, store, "--json", prompt="where is my order"))
    generated = json.loads(out)
    code, out, _ = aq("state", "show", "--agent", "A", "--conversation", "C", "--store", store, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["scope"] == {"tenant": "default", "agent": "A", "conversation": "C"}
    assert doc["state_status"] == "full"
    turns = doc["conversation"]["turns"]
    assert len(turns) == 1
    assert turns[0]["prompt"] == "where is my order"
    assert turns[0]["text"] == generated["text"]
    assert turns[0]["invocation"] == generated["scope"]["invocation"]
    assert doc["conversation"]["version"] == 1
    assert doc["agent"]["entropy_spent"] == pytest.approx(generated["entropy_spent"]["invocation"])
    # human-readable form
    code, out, _ = aq("state", "show", "--agent", "A", "--conversation", "C", "--store", store)
    assert code == 0 and "where is my order" in out


def test_state_show_of_an_unknown_conversation_is_empty(aq, store):
    code, out, _ = aq("state", "show", "--agent", "A", "--conversation", "nobody", "--store", store, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["conversation"]["turns"] == [] and doc["conversation"]["version"] == 0


def test_state_show_needs_a_conversation(aq, store):
    code, _, err = aq("state", "show", "--agent", "A", "--store", store)
    assert code == 2 and "--conversation" in one_error_line(err)


def test_state_export_writes_every_document_as_json_lines(aq, policy, store, tmp_path):
    aq(*generate_args(policy, store, "--json"))
    aq(*generate_args(policy, store, "--json", conversation="C2"))
    code, out, _ = aq("state", "export", "--store", store)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    keys = [line["key"] for line in lines]
    assert keys == ["agent/default:A", "conversation/default:A:C", "conversation/default:A:C2"]
    assert lines[0]["version"] == 2
    assert len(lines[1]["doc"]["turns"]) == 1
    target = tmp_path / "export.jsonl"
    assert aq("state", "export", "--store", store, "--out", str(target))[0] == 0
    assert target.read_text() == out


def test_state_delete_needs_yes(aq, policy, store):
    aq(*generate_args(policy, store, "--json"))
    show = ("state", "show", "--agent", "A", "--conversation", "C", "--store", store, "--json")
    code, out, err = aq("state", "delete", "--agent", "A", "--conversation", "C", "--store", store)
    assert code == 2 and out == ""
    assert "--yes" in one_error_line(err)
    assert len(json.loads(aq(*show)[1])["conversation"]["turns"]) == 1  # nothing deleted
    code, out, _ = aq("state", "delete", "--agent", "A", "--conversation", "C", "--store", store, "--yes")
    assert code == 0 and "deleted: conversation/default:A:C" in out
    doc = json.loads(aq(*show)[1])
    assert doc["conversation"]["turns"] == []
    assert doc["agent"]["version"] == 1  # only the conversation went
    code, out, _ = aq("state", "delete", "--agent", "A", "--conversation", "C", "--store", store, "--yes")
    assert code == 1 and "no such state" in out
    code, out, _ = aq("state", "delete", "--agent", "A", "--store", store, "--yes")
    assert code == 0 and "deleted: agent/default:A" in out


def test_state_replay_applies_journalled_updates(aq, store, tmp_path):
    journal_dir = tmp_path / "journal"
    turn = Turn(invocation="inv1", prompt="offline question", text="offline answer", finish_reason="stop")
    journal = Journal(journal_dir, store)
    journal.append(StateUpdate(key="conversation/default:A:C", entropy=1.5, turn=turn))
    journal.append(StateUpdate(key="agent/default:A", entropy=1.5))
    code, out, _ = aq("state", "replay", "--store", store, "--journal", str(journal_dir))
    assert code == 0 and "replayed 2 journalled update(s)" in out
    assert not journal.has_pending()
    code, out, _ = aq("state", "replay", "--store", store, "--journal", str(journal_dir))
    assert code == 0 and "replayed 0" in out
    code, out, _ = aq("state", "export", "--store", store)
    docs = {d["key"]: d["doc"] for d in map(json.loads, out.splitlines())}
    assert docs["conversation/default:A:C"]["turns"][0]["text"] == "offline answer"
    assert docs["agent/default:A"]["entropy_spent"] == 1.5


# -- as a program ---------------------------------------------------------------------------

def run_aq(*argv: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "AQ_HOME": str(home)}
    env.pop("AQ_DISABLE_PLUGINS", None)
    return subprocess.run(
        [sys.executable, "-m", "aqcore.cli.main", *argv],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_python_m_aq_generate_json(policy, tmp_path):
    proc = run_aq(*generate_args(policy, "memory:", "--json"), cwd=tmp_path, home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["finish_reason"] == "stop" and doc["text"]
    assert "Traceback" not in proc.stderr


def test_python_m_aq_usage_error_is_one_line_and_exit_2(policy, tmp_path):
    proc = run_aq(*generate_args(policy, "memory:", "--agent", "bad id!"), cwd=tmp_path, home=tmp_path / "home")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "'bad id!'" in one_error_line(proc.stderr)
