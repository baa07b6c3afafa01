"""The API catalog: APIs and their routes, upstreams and their targets."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apim.validators import (
    normalize_host,
    validate_base_path,
    validate_host_list,
    validate_methods,
    validate_name,
    validate_route_path,
    validate_upstream_url,
)

from .base import TenantOwned


class LoadBalancing(models.TextChoices):
    ROUND_ROBIN = "round_robin", "Round robin"
    WEIGHTED_ROUND_ROBIN = "weighted_round_robin", "Smooth weighted round robin"
    LEAST_CONNECTIONS = "least_connections", "Least connections"
    CONSISTENT_HASH = "consistent_hash", "Consistent hash on client IP"


def _between(low: int, high: int) -> list:
    return [MinValueValidator(low), MaxValueValidator(high)]


# What an operator sets on an upstream besides its name (the REST API and declarative config share it).
UPSTREAM_SETTINGS: tuple[str, ...] = (
    "description",
    "load_balancing",
    "connect_timeout_ms",
    "read_timeout_ms",
    "write_timeout_ms",
    "retries",
    "healthcheck_enabled",
    "healthcheck_path",
    "healthcheck_interval_s",
    "healthcheck_timeout_ms",
    "healthy_threshold",
    "unhealthy_threshold",
    "passive_failure_threshold",
    "ejection_base_s",
)


class Upstream(TenantOwned):
    """A pool of targets that serves one or more APIs, with the settings the
    gateway uses to balance, time out, retry and health-check them."""

    name = models.CharField(max_length=64, validators=[validate_name])
    description = models.TextField(blank=True)
    load_balancing = models.CharField(max_length=32, choices=LoadBalancing.choices, default=LoadBalancing.ROUND_ROBIN)
    connect_timeout_ms = models.PositiveIntegerField(default=5_000, validators=_between(1, 600_000))
    read_timeout_ms = models.PositiveIntegerField(default=60_000, validators=_between(1, 3_600_000))
    write_timeout_ms = models.PositiveIntegerField(default=60_000, validators=_between(1, 3_600_000))
    retries = models.PositiveSmallIntegerField(
        default=1,
        validators=_between(0, 10),
        help_text="Further attempts on another target (idempotent requests only).",
    )
    # Active health checks: the gateway probes each target.
    healthcheck_enabled = models.BooleanField(default=False)
    healthcheck_path = models.CharField(max_length=200, default="/health", validators=[validate_route_path])
    healthcheck_interval_s = models.PositiveIntegerField(default=10, validators=_between(1, 3600))
    healthcheck_timeout_ms = models.PositiveIntegerField(default=2_000, validators=_between(1, 60_000))
    healthy_threshold = models.PositiveSmallIntegerField(default=2, validators=_between(1, 100))
    unhealthy_threshold = models.PositiveSmallIntegerField(default=3, validators=_between(1, 100))
    # Passive health / circuit breaking: failures seen on real traffic eject a target.
    passive_failure_threshold = models.PositiveSmallIntegerField(default=5, validators=_between(1, 1000))
    ejection_base_s = models.PositiveIntegerField(
        default=30, validators=_between(1, 3600), help_text="First ejection length; doubles on repeated ejections."
    )

    class Meta:
        db_table = "am_upstreams"
        ordering = ["tenant__slug", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="am_upstreams_unique_name")]

    def __str__(self) -> str:
        return self.name


class Target(TenantOwned):
    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="targets")
    url = models.CharField(max_length=500, validators=[validate_upstream_url], help_text="http(s)://host:port[/path]")
    weight = models.PositiveIntegerField(default=100, validators=_between(0, 1000))
    enabled = models.BooleanField(default=True)

    same_tenant_fields = ("upstream",)

    class Meta:
        db_table = "am_upstream_targets"
        ordering = ["upstream__name", "url"]
        constraints = [models.UniqueConstraint(fields=["upstream", "url"], name="am_targets_unique_url")]

    def __str__(self) -> str:
        return self.url

    def clean(self) -> None:
        if self.upstream_id and not self.tenant_id:
            self.tenant_id = self.upstream.tenant_id
        super().clean()


class ApiStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    DEPRECATED = "deprecated", "Deprecated"
    RETIRED = "retired", "Retired"


# The only legal lifecycle moves. Retired is terminal: a retired API never routes again.
API_TRANSITIONS: dict[str, tuple[str, ...]] = {
    ApiStatus.DRAFT: (ApiStatus.PUBLISHED,),
    ApiStatus.PUBLISHED: (ApiStatus.DEPRECATED,),
    ApiStatus.DEPRECATED: (ApiStatus.RETIRED,),
    ApiStatus.RETIRED: (),
}
# Statuses the gateway routes.
ROUTABLE_STATUSES = (ApiStatus.PUBLISHED, ApiStatus.DEPRECATED)


class API(TenantOwned):
    name = models.CharField(max_length=64, validators=[validate_name])
    title = models.CharField(max_length=200)
    version = models.CharField(max_length=32, default="v1")
    description = models.TextField(blank=True)
    base_path = models.CharField(max_length=200, validators=[validate_base_path], help_text="e.g. /orders")
    hosts = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_host_list],
        help_text='Hostnames this API answers on, e.g. ["api.example.com"]; empty means every host of the tenant.',
    )
    strip_base_path = models.BooleanField(default=True, help_text="Remove the base path before forwarding upstream.")
    openapi_document = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=ApiStatus.choices, default=ApiStatus.DRAFT, editable=False)
    upstream = models.ForeignKey(Upstream, on_delete=models.PROTECT, null=True, blank=True, related_name="apis")
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    deprecated_at = models.DateTimeField(null=True, blank=True, editable=False)
    retired_at = models.DateTimeField(null=True, blank=True, editable=False)

    same_tenant_fields = ("upstream",)

    class Meta:
        db_table = "am_apis"
        verbose_name = "API"
        verbose_name_plural = "APIs"
        ordering = ["tenant__slug", "name", "version"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name", "version"], name="am_apis_unique_name_version"),
        ]
        indexes = [models.Index(fields=["tenant", "status"], name="am_apis_tenant_status")]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def is_routable(self) -> bool:
        return self.status in ROUTABLE_STATUSES

    def clean(self) -> None:
        super().clean()
        if isinstance(self.hosts, list) and all(isinstance(h, str) for h in self.hosts):
            self.hosts = [normalize_host(h) for h in self.hosts]
        if self.status == ApiStatus.RETIRED and self.pk:
            raise ValidationError("A retired API cannot be changed.")
        if self.tenant_id and self.base_path:
            from apim.selectors import api_base_path_conflict

            conflict = api_base_path_conflict(api=self)
            if conflict is not None:
                raise ValidationError(
                    {
                        "base_path": f"Base path {self.base_path} is already used by API {conflict} "
                        "on an overlapping host; give this API another base path or other hosts."
                    }
                )


class Route(TenantOwned):
    """A path (relative to the API's base path) and optional methods the API serves.

    An API without routes serves everything under its base path.
    """

    api = models.ForeignKey(API, on_delete=models.CASCADE, related_name="routes")
    name = models.CharField(max_length=100, blank=True)
    path = models.CharField(max_length=200, default="/", validators=[validate_route_path])
    methods = models.JSONField(default=list, blank=True, validators=[validate_methods], help_text="Empty means any.")
    enabled = models.BooleanField(default=True)

    same_tenant_fields = ("api",)

    class Meta:
        db_table = "am_routes"
        ordering = ["api__name", "path"]

    def __str__(self) -> str:
        methods = ",".join(self.methods) if self.methods else "*"
        return f"{methods} {self.path}"

    def clean(self) -> None:
        if self.api_id and not self.tenant_id:
            self.tenant_id = self.api.tenant_id
        if isinstance(self.methods, list) and all(isinstance(m, str) for m in self.methods):
            self.methods = sorted({m.upper() for m in self.methods})
        super().clean()
