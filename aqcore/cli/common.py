"""Pieces several commands share: runtime options and building a Runtime from them."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..config import CONFIG_ENV
from ..errors import UsageError


def add_runtime_options(parser: argparse.ArgumentParser, *, model_options: bool = True) -> None:
    parser.add_argument("--config", help="aq.toml to read defaults from (default: $AQ_CONFIG or ./aq.toml if present)")
    if model_options:
        parser.add_argument("--adapter", help="adapter name (see `aq plugins`)")
        parser.add_argument("--model", help="model name or path, as the adapter understands it")
        parser.add_argument("--policy", help="policy TOML file")
    parser.add_argument("--store", help="state store URL: memory:, lmdb:///path, redis://host:port/db")
    parser.add_argument("--tenant", help="tenant id (default: default)")
    parser.add_argument("--journal", help="directory of the local journal for updates the store did not take")
    if model_options:
        parser.add_argument("--lineage", help="lineage store URL or .jsonl file")
        parser.add_argument("--key", help="Ed25519 private key file that signs receipts")
        parser.add_argument("--keyring", help="keyring JSON file of public keys")
        parser.add_argument("--leaves", help="directory to keep each invocation's lineage leaves in (for proofs)")


def config_path(args: argparse.Namespace) -> str | None:
    if args.config:
        return str(args.config)
    if os.environ.get(CONFIG_ENV):
        return os.environ[CONFIG_ENV]
    return "aq.toml" if Path("aq.toml").exists() else None


def runtime_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for Runtime: the config file's values overridden by flags."""
    from ..config import load_config

    values: dict[str, Any] = {}
    path = config_path(args)
    if path:
        values = load_config(path).runtime_kwargs()
    for name in ("adapter", "model", "policy", "store", "tenant", "journal", "lineage", "key", "keyring", "leaves"):
        flag = getattr(args, name, None)
        if flag is not None:
            values[name] = flag
    if "policy" not in values and hasattr(args, "policy"):
        raise UsageError("no policy: pass --policy FILE or set runtime.policy in aq.toml")
    if "adapter" not in values and hasattr(args, "adapter"):
        # never fall back to the bundled test LM silently: say which adapters there are
        raise UsageError("no adapter: pass --adapter NAME (see `aq plugins`) or set runtime.adapter in aq.toml")
    return values


def build_runtime(args: argparse.Namespace) -> Any:
    from ..runtime import Runtime

    values = runtime_kwargs(args)
    if "policy" not in values:
        # state commands need no policy; an empty one binds no metric
        from ..policy import Policy

        values["policy"] = Policy(name="none")
    return Runtime(**values)
