"""Store URLs: what may be shown (never a password) and what identifies a store (not the
client options in its query), for journals that must find their store again. A URL may name
several hosts (``redis+cluster://h1:7000,h2:7001/``)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def _split_netloc(netloc: str) -> tuple[str | None, str | None, str]:
    """(user, password, hosts) of a netloc; hosts as written (one or a comma-separated list)."""
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        return None, None, netloc
    user, colon, password = userinfo.partition(":")
    return user, (password if colon else None), hosts


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages, logs and receipts)."""
    parts = urlsplit(url)
    user, password, hosts = _split_netloc(parts.netloc)
    if password is None:
        return url
    return urlunsplit((parts.scheme, f"{user or ''}:***@{hosts}", parts.path, parts.query, parts.fragment))


def store_identity(url: str) -> str:
    """The store a URL names: scheme, hosts, path; no credentials, no client options.
    ``redis://h:6379/0?timeout=0.5`` and ``redis://:pw@h:6379/0`` are the same store, and so
    are two cluster URLs listing the same startup nodes in another order."""
    parts = urlsplit(url)
    if not parts.netloc and not parts.path.startswith("/"):
        return url  # memory:name and the like have no authority to normalise
    _, _, hosts = _split_netloc(parts.netloc)
    nodes = ",".join(sorted(h.strip().lower() for h in hosts.split(",") if h.strip()))
    return urlunsplit((parts.scheme.lower(), nodes, parts.path.rstrip("/") or "/", "", ""))
