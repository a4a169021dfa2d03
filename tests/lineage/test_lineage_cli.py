"""``aq keys`` and ``aq lineage`` commands, run through their argparse registration."""

from __future__ import annotations

import argparse
import json
import stat
from pathlib import Path

import pytest

from aqcore.cli import keys_cmd, lineage_cmd
from aqcore.lineage import JsonlLineageStore, ReceiptBuilder, load_signer
from aqcore.lineage.keys import now_us


def run(*argv: str, opener=None) -> int:  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser(prog="aq")
    sub = parser.add_subparsers(dest="command")
    keys_cmd.register(sub)
    lineage_cmd.register(sub, store_opener=opener)
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    keys, store_path = tmp_path / "keys", tmp_path / "lineage.jsonl"
    assert run("keys", "generate", "--dir", str(keys), "--valid-days", "30") == 0
    store = JsonlLineageStore(str(store_path))
    signer = load_signer(keys)
    leaves_file = tmp_path / "leaves.jsonl"
    for conv, n in (("c1", 3), ("c2", 1)):
        for i in range(n):
            b = ReceiptBuilder(tenant="acme", agent="bot", conversation=conv, invocation=f"{conv}-{i}")
            for j in range(5):
                b.add_event("start" if j == 0 else "finish", now_us(), n=j)
            b.seal_and_append(
                store,
                signer=signer,
                text=f"t{i}",
                finish_reason="stop",
                state_status="partial" if i == 1 else "full",
            )
            leaves_file.write_bytes(b"\n".join(b.leaves) + b"\n")
            root = b.root().hex()
    return {
        "keys": keys,
        "store": store_path,
        "ring": keys / "keyring.json",
        "leaves": leaves_file,
        "root": Path(root),
    }


def test_keys_generate_list_rotate_revoke(world: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    keys = world["keys"]
    pems = list(keys.glob("*.pem"))
    assert len(pems) == 1 and stat.S_IMODE(pems[0].stat().st_mode) == 0o600
    assert run("keys", "generate", "--dir", str(keys.parent / "other")) == 0
    out = capsys.readouterr().out
    assert "generated key" in out and "BEGIN" not in out
    assert run("keys", "generate", "--dir", str(keys)) == 2  # already has an active key
    assert "rotate" in capsys.readouterr().err
    assert run("keys", "rotate", "--dir", str(keys)) == 0
    capsys.readouterr()
    assert run("keys", "list", "--dir", str(keys), "--json") == 0
    ring = json.loads(capsys.readouterr().out)
    assert sorted(k["status"] for k in ring["keys"]) == ["active", "retired"]
    assert run("keys", "list", "--keyring", str(world["ring"])) == 0
    assert "retired" in capsys.readouterr().out
    retired = next(k["key_id"] for k in ring["keys"] if k["status"] == "retired")
    assert run("keys", "revoke", retired, "--dir", str(keys)) == 0
    # receipts of the revoked key now fail
    assert run("lineage", "verify", str(world["store"]), "--keyring", str(world["ring"])) == 1


def test_lineage_verify_ok_then_tampered(world: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run("lineage", "verify", str(world["store"]), "--keyring", str(world["ring"])) == 0
    assert capsys.readouterr().out.startswith("ok: 4 receipts in 2 chains")
    assert (
        run(
            "lineage",
            "verify",
            "--store",
            world["store"].as_uri(),
            "--keyring",
            str(world["ring"]),
            "--conversation",
            "c2",
        )
        == 0
    )
    lines = world["store"].read_bytes().splitlines(keepends=True)
    del lines[1]  # drop c1's second receipt
    world["store"].write_bytes(b"".join(lines))
    capsys.readouterr()
    assert run("lineage", "verify", str(world["store"]), "--keyring", str(world["ring"]), "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["problems"][0] == {
        **report["problems"][0],
        "index": 1,
        "chain": "acme:bot:c1",
        "seq": 3,
        "code": "seq",
    }


def test_lineage_verify_unusable_input(tmp_path: Path, world: dict[str, Path]) -> None:
    assert run("lineage", "verify", str(tmp_path / "missing.jsonl"), "--keyring", str(world["ring"])) == 2
    assert run("lineage", "verify", str(world["store"]), "--keyring", str(tmp_path / "nope.json")) == 2
    assert run("lineage", "verify", str(world["store"]), "--store", "x") == 2


def test_lineage_show(world: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run("lineage", "show", str(world["store"])) == 0
    out = capsys.readouterr().out
    assert "partial" in out and "acme:bot:c2" in out
    assert run("lineage", "show", str(world["store"]), "--json", "--conversation", "c1") == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["seq"] for r in rows] == [1, 2, 3] and rows[1]["state_status"] == "partial"


def test_lineage_export_then_verify_offline(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "export.jsonl"
    assert (
        run("lineage", "export", str(world["store"]), "--keyring", str(world["ring"]), "--out", str(out)) == 0
    )
    assert run("lineage", "verify", str(out)) == 0  # uses the embedded keyring
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:-1]))  # drop the last receipt: the heads line shows it
    assert run("lineage", "verify", str(out)) == 1


def test_lineage_prove(world: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    root = str(world["root"])
    assert run("lineage", "prove", "--leaves", str(world["leaves"]), "--leaf", "3", "--root", root) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["ok"] and body["inclusion"]["index"] == 3 and body["inclusion"]["root"] == root
    assert run("lineage", "prove", "--leaves", str(world["leaves"]), "--leaf", "3", "--root", "0" * 64) == 1
    assert run("lineage", "prove", "--leaves", str(world["leaves"]), "--consistency", "2") == 0
    assert json.loads(capsys.readouterr().out.split("\n}\n")[-2] + "\n}")["ok"] is True
    assert run("lineage", "prove", "--leaves", str(world["leaves"]), "--leaf", "99") == 2


def test_non_file_store_goes_through_the_opener(world: dict[str, Path]) -> None:
    seen = []

    def opener(url: str) -> JsonlLineageStore:
        seen.append(url)
        return JsonlLineageStore(str(world["store"]))

    assert run("lineage", "verify", "--store", "mem://x", "--keyring", str(world["ring"]), opener=opener) == 0
    assert seen == ["mem://x"]
