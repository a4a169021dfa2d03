"""Store URLs: what may be shown (never a password) and what identifies a store (not the
client options in its query), for journals that must find their store again."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def _host(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port is not None else host


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages, logs and receipts)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit((parts.scheme, f"{parts.username or ''}:***@{_host(url)}", parts.path, parts.query,
                       parts.fragment))


def store_identity(url: str) -> str:
    """The store a URL names: scheme, host, port and path; no credentials, no client options.
    ``redis://h:6379/0?timeout=0.5`` and ``redis://:pw@h:6379/0`` are the same store."""
    parts = urlsplit(url)
    if not parts.netloc and not parts.path.startswith("/"):
        return url  # memory:name and the like have no authority to normalise
    return urlunsplit((parts.scheme.lower(), _host(url), parts.path.rstrip("/") or "/", "", ""))
