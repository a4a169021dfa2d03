"""``lmdb:///absolute/directory?map_size=...&sync=true|false`` parsed into options."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from aqcore.errors import UsageError

DEFAULT_MAP_SIZE = 256 * 2**20
_MIN_MAP_SIZE = 64 * 2**10
_SIZE = re.compile(r"(\d+)\s*(|k|kib|m|mib|g|gib|t|tib)", re.IGNORECASE)
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_BOOL = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
OPTIONS = ("map_size", "sync")


@dataclass(frozen=True)
class LmdbOptions:
    """Where the environment lives and how it commits."""

    path: str
    map_size: int = DEFAULT_MAP_SIZE
    sync: bool = True


def parse_size(text: str, url: str) -> int:
    """``1048576``, ``64MiB``, ``1G`` ... in bytes."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise UsageError(f"store URL {url!r}: map_size {text!r} is not a size (e.g. 268435456, 256MiB, 1GiB)")
    size = int(match.group(1)) * _UNITS[match.group(2)[:1].lower()]
    if size < _MIN_MAP_SIZE:
        raise UsageError(f"store URL {url!r}: map_size {text!r} is below the minimum of 64KiB")
    return size


def parse_url(url: str) -> LmdbOptions:
    """Parse an ``lmdb:`` URL; the path must be absolute (``lmdb:///var/lib/aq``)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "lmdb":
        raise UsageError(f"store URL {url!r} is not an lmdb: URL")
    if parts.netloc or not parts.path.startswith("/"):
        raise UsageError(
            f"store URL {url!r}: the path must be absolute, written with three slashes (lmdb:///var/lib/aq)"
        )
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(query) - set(OPTIONS))
    if unknown:
        raise UsageError(
            f"store URL {url!r}: unknown option(s) {', '.join(unknown)} (known: {', '.join(OPTIONS)})"
        )
    options: dict[str, object] = {}
    for name, values in query.items():
        if len(values) != 1:
            raise UsageError(f"store URL {url!r}: option {name!r} is given {len(values)} times")
    if "map_size" in query:
        options["map_size"] = parse_size(query["map_size"][0], url)
    if "sync" in query:
        raw = query["sync"][0].lower()
        if raw not in _BOOL:
            raise UsageError(f"store URL {url!r}: sync must be true or false, got {query['sync'][0]!r}")
        options["sync"] = _BOOL[raw]
    return LmdbOptions(path=os.path.normpath(parts.path), **options)  # type: ignore[arg-type]
