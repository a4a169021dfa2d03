"""``redis://[:password@]host:port/db?connect_timeout=0.2&timeout=0.5&retries=1`` parsed into
options. ``rediss://`` is the same over TLS. ``redis+cluster://[:password@]host:port[,host:port...]/``
names the startup nodes of a Redis Cluster (database 0 only), with the same options."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

from aqcore.errors import UsageError

CLUSTER_SCHEME = "redis+cluster"
SCHEMES = ("redis", "rediss", CLUSTER_SCHEME)
OPTIONS = ("connect_timeout", "timeout", "retries", "max_connections")


@dataclass(frozen=True)
class RedisOptions:
    """Connection settings. Timeouts are seconds; a call gives up after at most
    ``(retries + 1) * (connect_timeout + timeout)``."""

    address: str  # the URL without aq's options, as redis-py reads it
    display: str  # the URL with any password masked, for messages
    connect_timeout: float = 0.5
    timeout: float = 1.0
    retries: int = 1
    max_connections: int | None = None
    # Redis Cluster only: the startup nodes, and the credentials from the URL
    nodes: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def cluster(self) -> bool:
        return bool(self.nodes)


def _seconds(url: str, name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"store URL {url!r}: {name} must be a positive number of seconds, got {raw!r}")
    return value


def _count(url: str, name: str, raw: str, minimum: int) -> int:
    if not raw.isdigit() or int(raw) < minimum:
        raise UsageError(f"store URL {url!r}: {name} must be an integer >= {minimum}, got {raw!r}")
    return int(raw)


def mask(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    hosts = parts.netloc.rpartition("@")[2]  # also a cluster's ``h1:p1,h2:p2``
    return urlunsplit((parts.scheme, f"{user}:***@{hosts}", parts.path, parts.query, parts.fragment))


def _cluster_nodes(display: str, netloc: str) -> tuple[tuple[str, int], ...]:
    hosts = netloc.rpartition("@")[2]
    nodes: list[tuple[str, int]] = []
    for item in hosts.split(","):
        node = urlsplit(f"//{item.strip()}")
        try:
            port = node.port
        except ValueError as exc:
            raise UsageError(f"store URL {display!r}: node {item!r}: {exc}") from None
        if not node.hostname:
            raise UsageError(
                f"store URL {display!r} names a node without a host "
                "(e.g. redis+cluster://10.0.0.1:7000,10.0.0.2:7000/)"
            )
        nodes.append((node.hostname, port or 6379))
    return tuple(nodes)


def parse_url(url: str) -> RedisOptions:
    """Parse a ``redis:`` or ``rediss:`` store URL."""
    parts = urlsplit(url)
    display = mask(url)
    if parts.scheme.lower() not in SCHEMES:
        raise UsageError(f"store URL {display!r} is not a redis://, rediss:// or redis+cluster:// URL")
    cluster = parts.scheme.lower() == CLUSTER_SCHEME
    nodes: tuple[tuple[str, int], ...] = ()
    if cluster:
        nodes = _cluster_nodes(display, parts.netloc)
    elif not parts.hostname:
        raise UsageError(f"store URL {display!r} names no host (e.g. redis://127.0.0.1:6379/0)")
    if not cluster:
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError as exc:
            raise UsageError(f"store URL {display!r}: {exc}") from None
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise UsageError(f"store URL {display!r}: the path must be a database number, got {parts.path!r}")
    if cluster and db not in ("", "0"):
        raise UsageError(f"store URL {display!r}: a Redis Cluster has only database 0, got {parts.path!r}")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - set(OPTIONS))
    if unknown:
        raise UsageError(
            f"store URL {display!r}: unknown option(s) {', '.join(unknown)} (known: {', '.join(OPTIONS)})"
        )
    single: dict[str, str] = {}
    for name, values in query.items():
        if len(values) != 1:
            raise UsageError(f"store URL {display!r}: option {name!r} is given {len(values)} times")
        single[name] = values[0]
    settings: dict[str, object] = {}
    for name in ("connect_timeout", "timeout"):
        if name in single:
            settings[name] = _seconds(display, name, single[name])
    if "retries" in single:
        settings["retries"] = _count(display, "retries", single["retries"], 0)
    if "max_connections" in single:
        settings["max_connections"] = _count(display, "max_connections", single["max_connections"], 1)
    address = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode({}), ""))
    if cluster:
        settings["nodes"] = nodes
        settings["username"] = unquote(parts.username) if parts.username else None
        settings["password"] = unquote(parts.password) if parts.password is not None else None
    return RedisOptions(address=address, display=display, **settings)  # type: ignore[arg-type]
