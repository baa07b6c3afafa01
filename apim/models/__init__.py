from .audit import AuditEvent
from .base import TenantOwned
from .catalog import (
    API,
    API_TRANSITIONS,
    ROUTABLE_STATUSES,
    UPSTREAM_SETTINGS,
    ApiStatus,
    LoadBalancing,
    Route,
    Target,
    Upstream,
)
from .idempotency import IdempotencyRecord
from .tenancy import OPERATOR_ROLES, READER_ROLES, Membership, Role, Tenant, TenantHost
from .tokens import PersonalAccessToken

__all__ = [
    "API",
    "API_TRANSITIONS",
    "OPERATOR_ROLES",
    "READER_ROLES",
    "ROUTABLE_STATUSES",
    "UPSTREAM_SETTINGS",
    "ApiStatus",
    "AuditEvent",
    "IdempotencyRecord",
    "LoadBalancing",
    "Membership",
    "PersonalAccessToken",
    "Role",
    "Route",
    "Target",
    "Tenant",
    "TenantHost",
    "TenantOwned",
    "Upstream",
]
