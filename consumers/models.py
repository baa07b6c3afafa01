"""Consumers, applications, API keys, plans and subscriptions."""

from __future__ import annotations

import re
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from apim.models import API, TenantOwned
from apim.validators import validate_name, validate_scopes

_GROUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,63}$")
MAX_CONSUMER_GROUPS = 50


def validate_groups(value: object) -> None:
    """Consumer groups (``["gold", "internal"]``): what acl policies allow or deny by."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError('Groups must be a list of names, e.g. ["gold", "internal"].', code="groups_not_list")
    if len(value) > MAX_CONSUMER_GROUPS:
        raise ValidationError(f"A consumer may be in at most {MAX_CONSUMER_GROUPS} groups.", code="groups_too_many")
    for group in value:
        if not _GROUP_RE.match(group):
            raise ValidationError(
                f"{group!r} is not a valid group: 1-64 letters, digits and : . _ -", code="group_invalid"
            )
    if len(set(value)) != len(value):
        raise ValidationError("Groups lists the same group twice.", code="groups_duplicate")


class ConsumerStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"


class Consumer(TenantOwned):
    """Someone who calls the tenant's APIs: a partner, a team, a developer."""

    name = models.CharField(max_length=64, validators=[validate_name])
    organization = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    status = models.CharField(
        max_length=16, choices=ConsumerStatus.choices, default=ConsumerStatus.ACTIVE, editable=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="consumers",
        help_text="The portal account that manages this consumer, if any.",
    )
    groups = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_groups],
        help_text='Groups acl policies allow or deny by, e.g. ["gold", "internal"].',
    )

    class Meta:
        db_table = "am_consumers"
        ordering = ["tenant__slug", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="am_consumers_unique_name")]
        indexes = [models.Index(fields=["tenant", "status"], name="am_consumers_tenant_status")]

    def __str__(self) -> str:
        return self.name


class Application(TenantOwned):
    """One of a consumer's apps; keys and subscriptions belong to it."""

    consumer = models.ForeignKey(Consumer, on_delete=models.CASCADE, related_name="applications")
    name = models.CharField(max_length=64, validators=[validate_name])
    description = models.TextField(blank=True)

    same_tenant_fields = ("consumer",)

    class Meta:
        db_table = "am_applications"
        ordering = ["consumer__name", "name"]
        constraints = [models.UniqueConstraint(fields=["consumer", "name"], name="am_applications_unique_name")]

    def __str__(self) -> str:
        return f"{self.consumer.name}/{self.name}" if self.consumer_id else self.name

    def clean(self) -> None:
        if self.consumer_id and not self.tenant_id:
            self.tenant_id = self.consumer.tenant_id
        super().clean()


class APIKey(TenantOwned):
    """A credential of an application. Only a keyed hash of the key is stored.

    ``key_id`` is the key's public part (the lookup index); ``prefix`` is what
    every screen, log and usage record shows. A key is usable while ``active``
    and before ``expires_at``; rotation sets the old key's ``expires_at`` to the
    end of its grace period.
    """

    consumer = models.ForeignKey(Consumer, on_delete=models.CASCADE, related_name="keys")
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="keys")
    name = models.CharField(max_length=100, blank=True)
    key_id = models.CharField(max_length=32, unique=True, editable=False)
    prefix = models.CharField(max_length=40, editable=False, help_text="Shown instead of the key.")
    digest = models.CharField(max_length=64, editable=False)
    pepper_id = models.CharField(max_length=16, editable=False)
    scopes = models.JSONField(default=list, blank=True, validators=[validate_scopes])
    allowed_apis = models.ManyToManyField(
        API,
        blank=True,
        related_name="+",
        db_table="am_api_keys_allowed_apis",
        help_text="Empty: every API the application is subscribed to.",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    rotated_from = models.OneToOneField(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="rotated_to", editable=False
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )

    same_tenant_fields = ("consumer", "application")

    class Meta:
        db_table = "am_api_keys"
        verbose_name = "API key"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "active"], name="am_api_keys_tenant_active"),
            models.Index(fields=["active", "expires_at"], name="am_api_keys_active_expiry"),
        ]

    def __str__(self) -> str:
        return self.prefix

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return self.active and not self.is_expired

    @property
    def state(self) -> str:
        if not self.active:
            return "revoked"
        if self.is_expired:
            return "expired"
        return "active"

    def clean(self) -> None:
        if self.application_id:
            if not self.consumer_id:
                self.consumer_id = self.application.consumer_id
            if not self.tenant_id:
                self.tenant_id = self.application.tenant_id
            if self.consumer_id != self.application.consumer_id:
                raise ValidationError({"application": "The application belongs to another consumer."})
        super().clean()


# What an operator sets on a plan besides its name (the REST API and declarative config share it).
PLAN_SETTINGS: tuple[str, ...] = (
    "description",
    "rate_limit_per_second",
    "rate_limit_per_minute",
    "rate_limit_per_hour",
    "rate_limit_per_day",
    "quota_per_day",
    "quota_per_month",
    "quota_timezone",
    "requires_approval",
    "is_public",
)


class Plan(TenantOwned):
    """Limits a subscription grants. The policy engine turns them into rate-limit and quota policies."""

    name = models.CharField(max_length=64, validators=[validate_name])
    description = models.TextField(blank=True)
    rate_limit_per_second = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    rate_limit_per_minute = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    rate_limit_per_hour = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    rate_limit_per_day = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    quota_per_day = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    quota_per_month = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    quota_timezone = models.CharField(
        max_length=64, default="UTC", help_text="Daily and monthly quotas reset at midnight in this time zone."
    )
    requires_approval = models.BooleanField(default=False, help_text="New subscriptions wait for an operator.")
    is_public = models.BooleanField(default=True, help_text="Offered to developers in the portal.")

    class Meta:
        db_table = "am_plans"
        ordering = ["tenant__slug", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="am_plans_unique_name")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        try:
            zoneinfo.ZoneInfo(self.quota_timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValidationError(
                {"quota_timezone": f"{self.quota_timezone!r} is not a known time zone (e.g. Europe/Paris)."}
            ) from None


class SubscriptionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACTIVE = "active", "Active"
    REJECTED = "rejected", "Rejected"
    SUSPENDED = "suspended", "Suspended"
    CANCELLED = "cancelled", "Cancelled"


SUBSCRIPTION_TRANSITIONS: dict[str, tuple[str, ...]] = {
    SubscriptionStatus.PENDING: (SubscriptionStatus.ACTIVE, SubscriptionStatus.REJECTED, SubscriptionStatus.CANCELLED),
    SubscriptionStatus.ACTIVE: (SubscriptionStatus.SUSPENDED, SubscriptionStatus.CANCELLED),
    SubscriptionStatus.SUSPENDED: (SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELLED),
    SubscriptionStatus.REJECTED: (),
    SubscriptionStatus.CANCELLED: (),
}
# At most one subscription per application and API may be in one of these.
LIVE_SUBSCRIPTION_STATUSES = (SubscriptionStatus.PENDING, SubscriptionStatus.ACTIVE, SubscriptionStatus.SUSPENDED)


class Subscription(TenantOwned):
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="subscriptions")
    api = models.ForeignKey(API, on_delete=models.CASCADE, related_name="subscriptions", verbose_name="API")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(
        max_length=16, choices=SubscriptionStatus.choices, default=SubscriptionStatus.PENDING, editable=False
    )
    decided_at = models.DateTimeField(null=True, blank=True, editable=False)

    same_tenant_fields = ("application", "api", "plan")

    class Meta:
        db_table = "am_subscriptions"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["application", "api"],
                condition=models.Q(status__in=["pending", "active", "suspended"]),
                name="am_subscriptions_one_live",
                violation_error_message="This application already has a live subscription to this API.",
            )
        ]

    def __str__(self) -> str:
        app = self.application if self.application_id else "?"
        api = self.api if self.api_id else "?"
        return f"{app} → {api}"
