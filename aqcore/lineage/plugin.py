"""Built-in plugin ``file-lineage``: the ``file`` scheme for lineage stores (a JSON-lines file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from .jsonl import JsonlLineageStore


def open_file_store(url: str) -> JsonlLineageStore:
    """The JSON-lines lineage store of a ``file:///abs/path.jsonl`` URL."""
    from .jsonl import JsonlLineageStore

    return JsonlLineageStore(url)


@hookimpl
def aq_register_lineage_stores(register: Callable[..., None]) -> None:
    register("file", open_file_store, description="JSON-lines file (one host, many processes)")
