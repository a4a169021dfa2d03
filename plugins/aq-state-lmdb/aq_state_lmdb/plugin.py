"""aq plugin ``state-lmdb``: registers the ``lmdb`` scheme for state and lineage.

Discovery imports only this module; ``lmdb`` is imported when a store is opened.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aqcore.hookspecs import hookimpl

if TYPE_CHECKING:
    from .lineage import LmdbLineageStore
    from .state import LmdbStateBackend


def open_state_backend(url: str) -> LmdbStateBackend:
    """The state backend for an ``lmdb:///dir`` URL."""
    from .state import LmdbStateBackend

    return LmdbStateBackend(url)


def open_lineage_store(url: str) -> LmdbLineageStore:
    """The lineage store for an ``lmdb:///dir`` URL (same environment as the state backend)."""
    from .lineage import LmdbLineageStore

    return LmdbLineageStore(url)


@hookimpl
def aq_register_state_backends(register: Callable[..., None]) -> None:
    register("lmdb", open_state_backend, description="embedded LMDB (one host, many processes)")


@hookimpl
def aq_register_lineage_stores(register: Callable[..., None]) -> None:
    register("lmdb", open_lineage_store, description="embedded LMDB (one host, many processes)")
