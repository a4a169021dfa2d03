"""``aq``: entry point. Each command module adds its sub-parser with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import AdapterError, AqError, PolicyError, UsageError
from ..logging import configure

COMMAND_MODULES = (
    "aqcore.cli.generate_cmd",
    "aqcore.cli.policy_cmd",
    "aqcore.cli.state_cmd",
    "aqcore.cli.plugins_cmd",
    "aqcore.cli.lineage_cmd",
    "aqcore.cli.keys_cmd",
    "aqcore.cli.demo_cmd",
)

INPUT_ERRORS = (UsageError, PolicyError, AdapterError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aq", description="aq: governed LLM generation.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (repeatable)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # a command that is not part of this build
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except INPUT_ERRORS as exc:
        print(f"aq: error: {exc}", file=sys.stderr)
        return 2
    except AqError as exc:
        print(f"aq: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`aq plugins --json | head`): not an error of aq's
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
