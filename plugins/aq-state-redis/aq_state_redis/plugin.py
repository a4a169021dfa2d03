"""aq plugin ``state-redis``: registers the ``redis``, ``rediss`` and ``redis+cluster`` schemes for
state and lineage.

Discovery imports only this module; ``redis`` is imported when a store is opened.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aqcore.hookspecs import hookimpl

if TYPE_CHECKING:
    from .lineage import RedisLineageStore
    from .state import RedisStateBackend

SCHEMES = ("redis", "rediss")
CLUSTER_SCHEME = "redis+cluster"


def open_state_backend(url: str) -> RedisStateBackend:
    """The state backend for a ``redis://host:port/db`` or ``redis+cluster://h1:p1,h2:p2/`` URL."""
    from .state import RedisStateBackend

    return RedisStateBackend(url)


def open_lineage_store(url: str) -> RedisLineageStore:
    """The lineage store for a ``redis://host:port/db`` or ``redis+cluster://h1:p1,h2:p2/`` URL."""
    from .lineage import RedisLineageStore

    return RedisLineageStore(url)


@hookimpl
def aq_register_state_backends(register: Callable[..., None]) -> None:
    for scheme in SCHEMES:
        register(scheme, open_state_backend, description="Redis (shared by many workers and hosts)")
    register(CLUSTER_SCHEME, open_state_backend, description="Redis Cluster (sharded by conversation)")


@hookimpl
def aq_register_lineage_stores(register: Callable[..., None]) -> None:
    for scheme in SCHEMES:
        register(scheme, open_lineage_store, description="Redis streams (shared by many workers and hosts)")
    register(CLUSTER_SCHEME, open_lineage_store, description="Redis Cluster streams (sharded by conversation)")
