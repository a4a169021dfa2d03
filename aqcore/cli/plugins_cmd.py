"""``aq plugins``: what is installed, from which distribution, and what it provides."""

from __future__ import annotations

import argparse
import importlib.util
import json


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("plugins", help="list installed plugins")
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..plugins import get_plugin_manager

    infos = get_plugin_manager().describe()
    if args.json:
        print(json.dumps([info.as_dict() for info in infos], indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "distribution", "version", "provides", "status")
    for info in infos:
        status = info.status if not info.error else f"{info.status}: {info.error}"
        table.add_row(info.name, info.distribution, info.version, ", ".join(info.provides), status)
    console = Console()
    console.print(table)
    native = importlib.util.find_spec("aqcore._native") is not None
    console.print(
        "log-partition kernel: "
        + ("native (aqcore._native)" if native else "numpy (aqcore._native was not built: no C compiler?)")
    )
    return 0
