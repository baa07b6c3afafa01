from rest_framework.routers import SimpleRouter

from .views import (
    AccessTokenApi,
    ApiApi,
    AuditEventApi,
    MembershipApi,
    RouteApi,
    TargetApi,
    TenantApi,
    UpstreamApi,
)

router = SimpleRouter()
router.register("tenants", TenantApi, basename="tenant")
router.register("members", MembershipApi, basename="member")
router.register("apis", ApiApi, basename="api")
router.register("routes", RouteApi, basename="route")
router.register("upstreams", UpstreamApi, basename="upstream")
router.register("targets", TargetApi, basename="target")
router.register("audit-events", AuditEventApi, basename="auditevent")
router.register("tokens", AccessTokenApi, basename="accesstoken")
urlpatterns = router.urls
