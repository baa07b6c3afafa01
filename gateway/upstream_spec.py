"""Immutable views of an upstream and its targets: what the gateway's balancer,
health checks and proxy need, in the units they use (seconds, not ms).

The snapshot loader builds these from ``apim.models.catalog.Upstream`` /
``Target`` off the request path (``UpstreamSpec.from_fields`` takes the model's
field names unchanged); nothing here imports Django.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

ROUND_ROBIN: Final = "round_robin"
WEIGHTED_ROUND_ROBIN: Final = "weighted_round_robin"
LEAST_CONNECTIONS: Final = "least_connections"
CONSISTENT_HASH: Final = "consistent_hash"
STRATEGIES: Final = frozenset({ROUND_ROBIN, WEIGHTED_ROUND_ROBIN, LEAST_CONNECTIONS, CONSISTENT_HASH})

MAX_WEIGHT: Final = 1000


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """A target; ``origin``, ``host_header`` and ``path_prefix`` are parsed from the URL once."""

    url: str
    weight: int = 100
    enabled: bool = True
    origin: str = field(init=False, compare=False)
    host_header: bytes = field(init=False, repr=False, compare=False)
    path_prefix: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= MAX_WEIGHT:
            raise ValueError(f"target weight must be within 0..{MAX_WEIGHT}, got {self.weight}")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"target URL must be http(s)://host[:port][/path], got {self.url!r}")
        host = parts.netloc.rpartition("@")[2]
        object.__setattr__(self, "origin", f"{parts.scheme}://{host}")
        object.__setattr__(self, "host_header", host.encode("idna") if not host.isascii() else host.encode())
        object.__setattr__(self, "path_prefix", parts.path.rstrip("/").encode())

    @property
    def pickable(self) -> bool:
        """Whether the balancer may ever send traffic here (weight 0 drains a target)."""
        return self.enabled and self.weight > 0


@dataclass(frozen=True, slots=True)
class UpstreamSpec:
    """One upstream's settings. ``id`` is the model's primary key as a string; it
    and each target's URL key the health state that outlives snapshots."""

    id: str
    name: str = ""
    load_balancing: str = ROUND_ROBIN
    targets: tuple[TargetSpec, ...] = ()
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    write_timeout: float = 60.0
    retries: int = 1
    healthcheck_enabled: bool = False
    healthcheck_path: str = "/health"
    healthcheck_interval: float = 10.0
    healthcheck_timeout: float = 2.0
    healthy_threshold: int = 2
    unhealthy_threshold: int = 3
    passive_failure_threshold: int = 5
    ejection_base: float = 30.0
    _urls: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.load_balancing not in STRATEGIES:
            raise ValueError(f"unknown load_balancing {self.load_balancing!r}")
        urls = [t.url for t in self.targets]
        if len(set(urls)) != len(urls):
            raise ValueError("target URLs must be unique within an upstream")
        for name in ("healthy_threshold", "unhealthy_threshold", "passive_failure_threshold"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.retries < 0:
            raise ValueError("retries must not be negative")
        if self.ejection_base <= 0 or self.healthcheck_interval <= 0 or self.healthcheck_timeout <= 0:
            raise ValueError("ejection_base, healthcheck_interval and healthcheck_timeout must be positive")
        object.__setattr__(self, "_urls", frozenset(urls))

    @property
    def pickable_targets(self) -> tuple[TargetSpec, ...]:
        return tuple(t for t in self.targets if t.pickable)

    def has_target(self, url: str) -> bool:
        return url in self._urls

    @classmethod
    def from_fields(
        cls,
        *,
        id: object,
        targets: Iterable[TargetSpec],
        name: str = "",
        load_balancing: str = ROUND_ROBIN,
        connect_timeout_ms: int = 5_000,
        read_timeout_ms: int = 60_000,
        write_timeout_ms: int = 60_000,
        retries: int = 1,
        healthcheck_enabled: bool = False,
        healthcheck_path: str = "/health",
        healthcheck_interval_s: int = 10,
        healthcheck_timeout_ms: int = 2_000,
        healthy_threshold: int = 2,
        unhealthy_threshold: int = 3,
        passive_failure_threshold: int = 5,
        ejection_base_s: int = 30,
    ) -> UpstreamSpec:
        """Build from the Upstream model's field names and units (ms / s)."""
        return cls(
            id=str(id),
            name=name,
            load_balancing=load_balancing,
            targets=tuple(targets),
            connect_timeout=connect_timeout_ms / 1000,
            read_timeout=read_timeout_ms / 1000,
            write_timeout=write_timeout_ms / 1000,
            retries=retries,
            healthcheck_enabled=healthcheck_enabled,
            healthcheck_path=healthcheck_path,
            healthcheck_interval=float(healthcheck_interval_s),
            healthcheck_timeout=healthcheck_timeout_ms / 1000,
            healthy_threshold=healthy_threshold,
            unhealthy_threshold=unhealthy_threshold,
            passive_failure_threshold=passive_failure_threshold,
            ejection_base=float(ejection_base_s),
        )
