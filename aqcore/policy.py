"""Policies: named, versioned TOML files that configure metrics, budgets, degraded mode and
lineage. Loading validates every key against the registered metrics' settings and reports
the dotted path of a bad key together with the file name."""

from __future__ import annotations

import copy
import hashlib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import PolicyError
from .gate import GateMetric, MetricSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Budgets(_Strict):
    """Entropy budgets in nats per scope; None means unbounded."""

    invocation: float | None = Field(default=None, gt=0)
    conversation: float | None = Field(default=None, gt=0)
    agent: float | None = Field(default=None, gt=0)


class Units(_Strict):
    """How the unit loop cuts closed-API output: by sentence or every N characters."""

    size: Literal["sentence"] | int = "sentence"
    max_rerequests: int = Field(default=3, ge=0)

    @field_validator("size")
    @classmethod
    def _positive(cls, value: str | int) -> str | int:
        if isinstance(value, int) and value <= 0:
            raise ValueError("must be 'sentence' or a positive number of characters")
        return value


class StateSettings(_Strict):
    """How the runtime talks to the state store under this policy."""

    timeout_s: float = Field(default=2.0, gt=0, description="deadline of each store call; past it: degraded")
    max_retries: int = Field(default=16, ge=0, description="compare-and-set retries before the journal")


class Degraded(_Strict):
    """The stricter profile used when semantic state is missing or partial."""

    on_state_unavailable: Literal["degrade", "fail_closed"] = "degrade"
    max_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0)
    budgets: dict[str, float] = Field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Policy(BaseModel):
    """A loaded, validated policy. ``metrics`` maps a metric name to its validated settings."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str
    version: str = "0"
    description: str = ""
    refusal: str = "I can't help with that."
    max_rollbacks: int = Field(default=8, ge=0)
    max_resamples: int = Field(default=32, ge=0)
    max_tokens: int = Field(default=256, gt=0)
    budgets: Budgets = Field(default_factory=Budgets)
    units: Units = Field(default_factory=Units)
    state: StateSettings = Field(default_factory=StateSettings)
    metrics: dict[str, MetricSettings] = Field(default_factory=dict)
    degraded: Degraded = Field(default_factory=Degraded)
    digest: str = ""
    source: str = ""
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    def degraded_policy(self, metric_classes: Mapping[str, type[GateMetric]]) -> Policy:
        """This policy with the ``[degraded]`` overrides applied."""
        # a Policy built in code has no source document: its fields are the document
        source_doc = self.raw or self.model_dump(
            mode="json", exclude={"metrics", "digest", "source", "raw", "degraded"}, exclude_defaults=True
        ) | {"name": self.name, "metrics": {k: v.model_dump(mode="json") for k, v in self.metrics.items()}}
        raw = copy.deepcopy(source_doc)
        raw.pop("degraded", None)
        profile = self.degraded
        if profile.max_tokens is not None:
            raw["max_tokens"] = min(profile.max_tokens, self.max_tokens)
        raw.setdefault("budgets", {}).update(profile.budgets)
        for name, overrides in profile.metrics.items():
            raw.setdefault("metrics", {}).setdefault(name, {}).update(overrides)
        policy = build_policy(raw, metric_classes, source=self.source)
        return policy.model_copy(update={"digest": self.digest, "degraded": self.degraded})

    def temperature_cap(self, degraded: bool) -> float | None:
        return self.degraded.temperature if degraded else None


# filled in by the loader, never read from a file
_INTERNAL_FIELDS = ("digest", "source", "raw")


def _dotted(loc: tuple[Any, ...], prefix: str = "") -> str:
    parts = [prefix] if prefix else []
    for item in loc:
        if isinstance(item, int):
            if parts:
                parts[-1] += f"[{item}]"
            else:
                parts.append(f"[{item}]")
        else:
            parts.append(str(item))
    return ".".join(parts)


def _raise_validation(err: ValidationError, source: str, prefix: str = "") -> None:
    first = err.errors()[0]
    key = _dotted(tuple(first["loc"]), prefix)
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    raise PolicyError(f"invalid policy: {message}", path=source or None, key=key or None) from None


def digest_of(raw: Mapping[str, Any], source: str = "") -> str:
    """sha256 (hex) of the RFC 8785 canonical JSON of the policy document."""
    try:
        return hashlib.sha256(rfc8785.dumps(dict(raw))).hexdigest()
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise PolicyError(f"policy values must be JSON-representable: {exc}", path=source or None) from None


def build_policy(
    raw: Mapping[str, Any], metric_classes: Mapping[str, type[GateMetric]], *, source: str = ""
) -> Policy:
    """Validate a policy document (the parsed TOML) against the registered metrics."""
    data = dict(raw)
    for internal in _INTERNAL_FIELDS:
        if internal in data:
            raise PolicyError("invalid policy: unknown key", path=source or None, key=internal)
    metric_tables = data.pop("metrics", {}) or {}
    if not isinstance(metric_tables, dict):
        raise PolicyError("[metrics] must be a table of metric tables", path=source or None, key="metrics")
    metrics: dict[str, MetricSettings] = {}
    for name, table in metric_tables.items():
        cls = metric_classes.get(name)
        if cls is None:
            known = ", ".join(sorted(metric_classes)) or "none registered"
            raise PolicyError(
                f"unknown gate metric {name!r} (registered metrics: {known})",
                path=source or None,
                key=f"metrics.{name}",
            )
        if not isinstance(table, dict):
            raise PolicyError("must be a table", path=source or None, key=f"metrics.{name}")
        try:
            metrics[name] = cls.Settings.model_validate(table)
        except ValidationError as err:
            _raise_validation(err, source, f"metrics.{name}")
    try:
        policy = Policy.model_validate(
            {**data, "metrics": {}, "digest": digest_of(raw, source), "source": source, "raw": dict(raw)}
        )
    except ValidationError as err:
        _raise_validation(err, source)
    for name in policy.degraded.metrics:
        if name not in metric_classes:
            raise PolicyError(
                f"unknown gate metric {name!r} in the degraded profile",
                path=source or None,
                key=f"degraded.metrics.{name}",
            )
    for scope in policy.degraded.budgets:
        if scope not in Budgets.model_fields:
            raise PolicyError("unknown budget scope", path=source or None, key=f"degraded.budgets.{scope}")
    policy = policy.model_copy(update={"metrics": metrics})
    if raw.get("degraded"):
        try:
            policy.degraded_policy(metric_classes)  # fail at load time, not on the first outage
        except PolicyError as err:
            raise PolicyError(
                str(err).split(" (", 1)[0], path=source or None, key=f"degraded.{err.key}" if err.key else "degraded"
            ) from None
    return policy


def load_policy(path: str | Path, metric_classes: Mapping[str, type[GateMetric]]) -> Policy:
    """Read and validate a policy TOML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy: {exc.strerror}", path=str(path)) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"not valid TOML: {exc}", path=str(path)) from None
    if "name" not in raw:
        raise PolicyError("a policy needs a top-level name", path=str(path), key="name")
    return build_policy(raw, metric_classes, source=str(path))
