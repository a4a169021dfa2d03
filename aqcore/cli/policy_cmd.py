"""``aq policy check FILE``: validate a policy and print its digest."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("policy", help="work with policy files")
    sub = parser.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate a policy file and print its digest")
    check.add_argument("file")
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=check_policy)


def check_policy(args: argparse.Namespace) -> int:
    from ..plugins import get_plugin_manager
    from ..policy import load_policy

    policy = load_policy(args.file, get_plugin_manager().metric_classes())
    if args.json:
        print(json.dumps({
            "file": args.file, "name": policy.name, "version": policy.version, "digest": policy.digest,
            "metrics": list(policy.metrics),
        }))
    else:
        print(f"{args.file}: ok  {policy.name} {policy.version}  sha256:{policy.digest}")
        print(f"  metrics: {', '.join(policy.metrics) or '(none)'}")
    return 0
