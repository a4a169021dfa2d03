"""The redis-py client aq's Redis stores use, and the translation of its errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from aqcore.errors import AqError

from .options import RedisOptions

Client = redis.Redis | RedisCluster


def make_client(options: RedisOptions) -> Client:
    """A client that never waits longer than the URL's timeouts: redis-py's default retry
    (ten tries with exponential backoff) would turn a dead server into a seconds-long hang.

    For a ``redis+cluster://`` URL, a :class:`redis.cluster.RedisCluster` over the URL's startup
    nodes; it reads the slot map from the first node that answers when it is built."""
    if options.cluster:
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in options.nodes],
            username=options.username,
            password=options.password,
            socket_connect_timeout=options.connect_timeout,
            socket_timeout=options.timeout,
            retry=Retry(NoBackoff(), options.retries),
            max_connections=options.max_connections,
            decode_responses=False,
        )
    return redis.Redis.from_url(
        options.address,
        socket_connect_timeout=options.connect_timeout,
        socket_timeout=options.timeout,
        retry=Retry(NoBackoff(), options.retries),
        retry_on_timeout=options.retries > 0,
        health_check_interval=0,
        max_connections=options.max_connections,
        decode_responses=False,
    )


@contextmanager
def translated(error: type[AqError], where: str, action: str) -> Iterator[None]:
    """Raise ``error`` naming the server and the action for any Redis, Redis Cluster or socket
    failure (a cluster that is down or unreachable, a timeout, too many MOVED redirections)."""
    try:
        yield
    except (redis.RedisError, RedisClusterException, OSError) as exc:
        kind = "timed out" if isinstance(exc, redis.TimeoutError | TimeoutError) else "failed"
        raise error(f"redis at {where}: {action} {kind}: {type(exc).__name__}: {exc}") from exc


def decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStore:
    """What both Redis stores share: the client built on first use (a cluster client reads the
    slot map when it is built, so a cluster that is down must fail the call, not the opening),
    one Lua script loaded once, and Redis errors translated to the store's own error type."""

    error: type[AqError] = AqError
    script_source: str = ""

    def __init__(self, url: str, *, client: Any = None) -> None:
        from .options import parse_url

        self.url = url
        self._options = parse_url(url)
        self._client = client
        self._script: Any = None

    @property
    def _redis(self) -> Any:
        if self._client is None:
            self._client = make_client(self._options)
        return self._client

    def _run_script(self, keys: list[str], args: list[Any]) -> Any:
        if self._script is None:
            self._script = self._redis.register_script(self.script_source)
        return self._script(keys=keys, args=args)

    def _io(self, action: str) -> Any:
        return translated(self.error, self._options.display, action)

    def close(self) -> None:
        """Close the connection pool (or every node's, on a cluster)."""
        if self._client is None:
            return
        with self._io("close"):
            self._client.close()
