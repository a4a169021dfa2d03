"""``aq demo`` end to end on the test LM (the llama.cpp package runs it on SmolLM2)."""

from __future__ import annotations

from pathlib import Path

from aqcore import demo
from aqcore.cli.main import main


def test_the_bundled_demo_policy_is_the_example_policy():
    example = Path(__file__).resolve().parents[2] / "examples" / "policies" / "support-agent.toml"
    if example.exists():  # the checkout; an installed wheel carries only its own copy
        assert demo.policy_path().read_text() == example.read_text()


def test_demo_runs_every_turn_and_verifies_its_lineage(tmp_path, capsys):
    code = main(["demo", "--adapter", "test", "--model", "default", "--dir", str(tmp_path),
                 "--store", f"memory:{tmp_path}", "--lineage", str(tmp_path / "lineage.jsonl"),
                 "--conversation", "demo-test"])
    out = capsys.readouterr().out
    assert code == 0, out
    for turn in demo.TURNS:
        assert turn.split()[0] in out
    assert out.count("receipt seq") == len(demo.TURNS)
    assert "verified: ok: 4 receipts in 1 chains verified" in out
    assert (tmp_path / "keys" / "keyring.json").exists()
    # a second run continues the same conversation from the store: the chain goes on
    code = main(["demo", "--adapter", "test", "--dir", str(tmp_path), "--store", f"memory:{tmp_path}",
                 "--lineage", str(tmp_path / "lineage.jsonl"), "--conversation", "demo-test"])
    out = capsys.readouterr().out
    assert code == 0
    assert "resuming: 4 earlier turns" in out
    assert "ok: 8 receipts in 1 chains verified" in out


def test_demo_without_its_plugins_says_how_to_get_them(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AQ_DISABLE_PLUGINS", "state-lmdb")
    code = main(["demo", "--dir", str(tmp_path), "--adapter", "test"])
    err = capsys.readouterr().err
    assert code == 2
    assert "scripts/demo" in err and "lmdb" in err
