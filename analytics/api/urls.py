from rest_framework.routers import SimpleRouter

from .views import AnalyticsApi, UsageRecordApi

router = SimpleRouter()
router.register("analytics", AnalyticsApi, basename="analytics")
router.register("usage-records", UsageRecordApi, basename="usagerecord")
urlpatterns = router.urls
