"""RFC 8785 (JSON Canonicalization Scheme) bytes, with a fast path for aq's simple records.

``rfc8785.dumps`` is the reference. For the shapes aq writes on the hot path (objects whose
keys are ASCII and whose values are integers in the IEEE-754 safe range, booleans, null,
strings, or flat lists of those) Python's C JSON encoder with sorted keys and compact
separators produces the same bytes: both escape exactly ``"``, ``\\`` and U+0000..U+001F
(with the same short forms and lower-case ``\\u00xx``), both write other characters as raw
UTF-8, integers print identically, and ASCII keys sort the same by code point as by UTF-16
code unit. Anything else goes through ``rfc8785``. tests/lineage checks the equivalence with
hypothesis.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from ..errors import LineageError

INT_MAX = 2**53 - 1
INT_MIN = -(2**53) + 1

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False).encode


def _simple(value: Any) -> bool:
    """True if ``value`` is a scalar or flat list the fast path serialises exactly like RFC 8785."""
    kind = type(value)
    if kind is int:
        return INT_MIN <= value <= INT_MAX
    if kind is str or value is None or kind is bool:
        return True
    if kind is list:
        for item in value:
            item_kind = type(item)
            if item_kind is int:
                if not INT_MIN <= item <= INT_MAX:
                    return False
            elif item_kind is not str and item is not None and item_kind is not bool:
                return False
        return True
    return False


def fast_canonical(obj: Any) -> bytes | None:
    """RFC 8785 bytes of a flat record by the fast path, or None where the fast path does not apply."""
    if type(obj) is not dict:
        return None
    for key, value in obj.items():
        if type(key) is not str or not key.isascii() or not _simple(value):
            return None
    try:
        return _encode(obj).encode("utf-8")
    except UnicodeEncodeError:
        return None  # a lone surrogate: let rfc8785 produce its precise error


def canonical_ascii_strings(obj: Any) -> bytes:
    """RFC 8785 bytes of a structure of objects, lists and strings only (no numbers).

    With no numbers and nothing outside ASCII, Python's sorted compact encoding is the
    canonical form; anything else goes through ``rfc8785``.
    """
    text = _encode(obj)
    return text.encode("ascii") if text.isascii() else canonical_bytes(obj)


def canonical_bytes(obj: Any) -> bytes:
    """The RFC 8785 canonical serialisation of ``obj``.

    :raises LineageError: if ``obj`` cannot be canonicalised (integer beyond 2**53, NaN,
        lone surrogate, non-string key).
    """
    fast = fast_canonical(obj)
    if fast is not None:
        return fast
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise LineageError(f"value cannot be written as RFC 8785 canonical JSON: {exc}") from None


def reject_floats(obj: Any, where: str = "record") -> None:
    """Raise :class:`LineageError` naming the first float (or non-JSON value) inside ``obj``.

    Lineage records hold integers only (µs timestamps, scores in parts per million) so that
    every verifier reproduces the same bytes without float formatting rules.
    """
    kind = type(obj)
    if kind is float:
        raise LineageError(f"{where} is a float ({obj!r}); lineage records hold integers only")
    if kind is dict:
        for key, value in obj.items():
            if type(key) is not str:
                raise LineageError(f"{where} has a non-string key {key!r}")
            reject_floats(value, f"{where}.{key}")
    elif kind is list or kind is tuple:
        for i, value in enumerate(obj):
            reject_floats(value, f"{where}[{i}]")
    elif not (obj is None or kind is bool or kind is int or kind is str):
        raise LineageError(f"{where} has type {kind.__name__}; expected int, str, bool, null, list or object")


def _no_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _no_float(text: str) -> Any:
    raise ValueError(f"float {text} in a record that holds integers only")


def _safe_int(text: str) -> int:
    value = int(text)
    if not INT_MIN <= value <= INT_MAX:
        raise ValueError(f"integer {text} beyond the IEEE-754 safe range")
    return value


def parse_canonical(data: bytes) -> Any:
    """Parse JSON ``data`` and check that it is exactly its own RFC 8785 canonical form.

    Floats, NaN/Infinity and integers beyond 2**53 are refused (aq records never hold them).
    :raises LineageError: naming what was wrong.
    """
    try:
        obj = json.loads(data, parse_float=_no_float, parse_int=_safe_int, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LineageError(f"not valid JSON: {exc}") from None
    if data.isascii():
        # json.loads turns \uXXXX escapes into characters and json.dumps writes them raw, so a
        # payload that escaped what RFC 8785 writes raw compares unequal below, as it must.
        try:
            again = _encode(obj).encode("utf-8")
        except UnicodeEncodeError:
            raise LineageError("not canonical JSON: contains a lone surrogate") from None
    else:
        again = canonical_bytes(obj)
    if again != data:
        raise LineageError("not RFC 8785 canonical JSON (a byte differs from the canonical form)")
    return obj
