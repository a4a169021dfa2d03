"""``aq lineage``: verify, show, export receipt chains and prove one observation's inclusion.

Exit codes: 0 everything verifies, 1 a record (or proof) does not verify, 2 unusable input.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import AqError, LineageError, UsageError
from ..lineage.dsse import parse_envelope
from ..lineage.export import export_store, read_lineage_file
from ..lineage.jsonl import JsonlLineageStore
from ..lineage.keys import KEYRING_FILE, Keyring, default_key_dir
from ..lineage.proofs import leaves_root, prove_consistency, prove_inclusion, verify_leaf
from ..lineage.statement import parse_statement
from ..lineage.store import LineageStore
from ..lineage.verify import verify_records, verify_store

StoreOpener = Callable[[str], LineageStore]
DEFAULT_STORE = ".aq/lineage.jsonl"


def default_store() -> str:
    """``$AQ_LINEAGE_STORE`` or ``.aq/lineage.jsonl``."""
    return os.environ.get("AQ_LINEAGE_STORE", DEFAULT_STORE)


def _is_file_url(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def open_store(url: str, opener: StoreOpener | None = None) -> LineageStore:
    """A store for ``url``: file paths and ``file://`` URLs directly, other schemes through
    ``opener`` or the plugins' ``aq_register_lineage_stores`` registrations."""
    if _is_file_url(url):
        return JsonlLineageStore(url)
    if opener is None:
        from ..plugins import get_plugin_manager

        opener = get_plugin_manager().open_lineage_store
    return opener(url)


def register(
    subparsers: argparse._SubParsersAction,
    *,  # type: ignore[type-arg]
    store_opener: StoreOpener | None = None,
) -> None:
    """Add ``aq lineage`` and its sub-commands. ``store_opener`` resolves non-file store URLs."""
    lineage = subparsers.add_parser("lineage", help="verify, show and export signed receipts")
    lineage.set_defaults(store_opener=store_opener)
    sub = lineage.add_subparsers(dest="lineage_command", required=True, metavar="COMMAND")

    def source(p: argparse.ArgumentParser) -> None:
        p.add_argument("file", nargs="?", help="a lineage store file or an export file")
        p.add_argument("--store", help=f"store URL (default $AQ_LINEAGE_STORE or {DEFAULT_STORE})")
        p.add_argument("--conversation", help="only this conversation (id, or tenant:agent:conversation)")
        p.set_defaults(store_opener=store_opener)

    ver = sub.add_parser("verify", help="verify every receipt; exit 1 naming the first bad record")
    source(ver)
    ver.add_argument("--keyring", help="trusted keyring file (default: the export's own, else the key dir's)")
    ver.add_argument("--json", action="store_true", help="print the report as JSON")
    ver.set_defaults(func=_verify)

    show = sub.add_parser("show", help="list receipts (without verifying them)")
    source(show)
    show.add_argument("--json", action="store_true", help="print each statement as a JSON line")
    show.set_defaults(func=_show)

    exp = sub.add_parser("export", help="write the keyring and every envelope to a JSON-lines file")
    source(exp)
    exp.add_argument("--keyring", help="keyring file to include (default: the key dir's)")
    exp.add_argument("--out", required=True, help="output file")
    exp.set_defaults(func=_export)

    prove = sub.add_parser("prove", help="print and check an inclusion or consistency proof")
    prove.add_argument("--leaves", required=True, help="an invocation's leaves: canonical JSON, one per line")
    what = prove.add_mutually_exclusive_group(required=True)
    what.add_argument("--leaf", type=int, help="prove inclusion of leaf N (0-based)")
    what.add_argument("--consistency", type=int, metavar="M", help="prove the first M leaves are a prefix")
    prove.add_argument("--size", type=int, help="second tree size for --consistency (default: all leaves)")
    prove.add_argument("--root", help="expected root (hex), e.g. the receipt's invocation subject digest")
    prove.set_defaults(func=_prove)


def _error(exc: Exception) -> int:
    print(f"aq lineage: error: {exc}", file=sys.stderr)
    return 2


def _source(args: argparse.Namespace) -> str:
    if args.file and args.store:
        raise UsageError("give a FILE or --store, not both")
    return str(args.file or args.store or default_store())


def _default_keyring() -> Keyring:
    path = Path(default_key_dir()) / KEYRING_FILE
    if not path.exists():
        raise UsageError(f"no keyring given and {path} does not exist; pass --keyring FILE")
    return Keyring.load(path)


def _verify(args: argparse.Namespace) -> int:
    try:
        url = _source(args)
        trusted = Keyring.load(args.keyring) if args.keyring else None
        if _is_file_url(url):
            lf = read_lineage_file(JsonlLineageStore(url).path)
            keyring = trusted or lf.keyring or _default_keyring()
            report = verify_records(lf.records, keyring, conversation=args.conversation, heads=lf.heads)
        else:
            store = open_store(url, args.store_opener)
            try:
                report = verify_store(store, trusted or _default_keyring(), conversation=args.conversation)
            finally:
                store.close()
    except AqError as exc:
        return _error(exc)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "records": report.records,
                    "chains": {c: {"seq": s.seq, "digest": s.digest} for c, s in report.chains.items()},
                    "problems": [
                        {"index": p.index, "chain": p.chain, "seq": p.seq, "code": p.code, "reason": p.reason}
                        for p in sorted(report.problems, key=lambda p: p.index)
                    ],
                },
                indent=2,
            )
        )
    else:
        print(report.summary())
    return 0 if report.ok else 1


def _statements(args: argparse.Namespace) -> list[tuple[int, str | None, Any]]:
    """(index, stored chain, Statement or error text) of every record of the source."""
    url = _source(args)
    if _is_file_url(url):
        records = read_lineage_file(JsonlLineageStore(url).path).records
    else:
        store = open_store(url, args.store_opener)
        try:
            records = [(c, e) for c in store.chains() for e in store.records(c)]
        finally:
            store.close()
    out: list[tuple[int, str | None, Any]] = []
    for i, (chain, data) in enumerate(records):
        try:
            st: Any = parse_statement(parse_envelope(data).payload)
        except LineageError as exc:
            st = f"unreadable: {exc}"
        name = chain or (st.chain if not isinstance(st, str) else None)
        if (
            args.conversation
            and name
            and name != args.conversation
            and name.rsplit(":", 1)[-1] != args.conversation
        ):
            continue
        out.append((i, name, st))
    return out


def _show(args: argparse.Namespace) -> int:
    try:
        rows = _statements(args)
    except AqError as exc:
        return _error(exc)
    if not args.json:
        print(
            f"{'#':>4}  {'chain':30}  {'seq':>4}  {'invocation':32}  {'status':7}  {'finish':16}  "
            f"{'leaves':>6}  root"
        )
    for i, chain, st in rows:
        if isinstance(st, str):
            print(json.dumps({"index": i, "chain": chain, "error": st}) if args.json else f"{i:>4}  {st}")
            continue
        p = st.predicate
        if args.json:
            print(json.dumps({"index": i, "root": st.root, "text_sha256": st.text_sha256, **p}))
        else:
            print(
                f"{i:>4}  {st.chain:30}  {st.seq:>4}  {p['invocation']:32}  {p['state_status']:7}  "
                f"{p['finish_reason']:16}  {p['tree_size']:>6}  {st.root[:16]}"
            )
    return 0


def _export(args: argparse.Namespace) -> int:
    try:
        keyring = Keyring.load(args.keyring) if args.keyring else _default_keyring()
        store = open_store(_source(args), args.store_opener)
        try:
            count = export_store(store, args.out, keyring, conversation=args.conversation)
        finally:
            store.close()
    except AqError as exc:
        return _error(exc)
    print(f"exported {count} receipts and {len(keyring)} keys to {args.out}")
    return 0


def _read_leaves(path: str) -> list[bytes]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise LineageError(f"cannot read leaves {path}: {exc.strerror}") from None
    return [line for line in data.split(b"\n") if line]


def _prove(args: argparse.Namespace) -> int:
    try:
        leaves = _read_leaves(args.leaves)
        if args.leaf is not None:
            proof = prove_inclusion(leaves, args.leaf)
            expected = args.root or proof.root
            ok = verify_leaf(leaves[args.leaf], proof, expected)
            body: dict[str, Any] = {
                "inclusion": proof.to_dict(),
                "leaf": base64.b64encode(leaves[args.leaf]).decode("ascii"),
            }
        else:
            cproof = prove_consistency(leaves, args.consistency, args.size)
            ok = cproof.verify() and (args.root is None or args.root == cproof.second_root)
            body = {"consistency": cproof.to_dict()}
    except AqError as exc:
        return _error(exc)
    body["ok"] = ok
    if args.root and args.leaf is not None and leaves_root(leaves) != args.root:
        body["note"] = "the leaves file does not hash to --root"
    print(json.dumps(body, indent=2))
    return 0 if ok else 1
