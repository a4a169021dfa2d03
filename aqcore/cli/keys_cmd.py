"""``aq keys``: generate, rotate, revoke and list the Ed25519 keys that sign lineage receipts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import LineageError, UsageError
from ..lineage.keys import (
    DEFAULT_KEY_DIR,
    KEYRING_FILE,
    Keyring,
    default_key_dir,
    generate_key,
    revoke_key,
    rotate_key,
)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``aq keys`` and its sub-commands."""
    keys = subparsers.add_parser("keys", help="manage lineage signing keys")
    sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")

    gen = sub.add_parser("generate", help="create the first signing key of a key directory")
    rot = sub.add_parser("rotate", help="create a new active key and retire the current one")
    for p in (gen, rot):
        p.add_argument(
            "--dir", default=None, help=f"key directory (default $AQ_KEY_DIR or {DEFAULT_KEY_DIR})"
        )
        p.add_argument("--valid-days", type=int, default=365, help="validity window in days (default 365)")
    gen.set_defaults(func=_generate)
    rot.set_defaults(func=_rotate)

    rev = sub.add_parser("revoke", help="revoke a key: receipts it signed stop verifying")
    rev.add_argument("key_id", help="the key id (sha256 hex of the public key)")
    rev.add_argument("--dir", default=None, help="key directory")
    rev.set_defaults(func=_revoke)

    lst = sub.add_parser("list", help="list the keys of a keyring")
    lst.add_argument("--dir", default=None, help="key directory")
    lst.add_argument("--keyring", default=None, help="keyring file (instead of --dir)")
    lst.add_argument("--json", action="store_true", help="print the keyring as JSON")
    lst.set_defaults(func=_list)


def _dir(args: argparse.Namespace) -> Path:
    return Path(args.dir or default_key_dir())


def _fail(exc: Exception) -> int:
    print(f"aq keys: error: {exc}", file=sys.stderr)
    return 2


def _generate(args: argparse.Namespace) -> int:
    try:
        info = generate_key(_dir(args), valid_days=args.valid_days)
    except (UsageError, LineageError, OSError) as exc:
        return _fail(exc)
    print(f"generated key {info.key_id}")
    print(f"private key: {_dir(args) / (info.key_id + '.pem')} (mode 0600; keep it secret)")
    print(f"keyring:     {_dir(args) / KEYRING_FILE} (public; give it to verifiers)")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    try:
        info = rotate_key(_dir(args), valid_days=args.valid_days)
    except (UsageError, LineageError, OSError) as exc:
        return _fail(exc)
    print(f"new active key {info.key_id}; previous keys retired (they still verify their receipts)")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    try:
        info = revoke_key(_dir(args), args.key_id)
    except (UsageError, LineageError) as exc:
        return _fail(exc)
    print(f"revoked key {info.key_id}: receipts it signed no longer verify")
    return 0


def _list(args: argparse.Namespace) -> int:
    path = Path(args.keyring) if args.keyring else _dir(args) / KEYRING_FILE
    try:
        keyring = Keyring.load(path)
    except LineageError as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps(keyring.to_dict(), indent=2))
        return 0
    print(f"{'key id':64}  {'status':8}  not_before_us     not_after_us")
    for key in keyring:
        print(f"{key.key_id:64}  {key.status:8}  {key.not_before_us:<16}  {key.not_after_us}")
    return 0
