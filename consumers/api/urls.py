from rest_framework.routers import SimpleRouter

from .views import ApiKeyApi, ApplicationApi, ConsumerApi, PlanApi, SubscriptionApi

router = SimpleRouter()
router.register("consumers", ConsumerApi, basename="consumer")
router.register("applications", ApplicationApi, basename="application")
router.register("keys", ApiKeyApi, basename="apikey")
router.register("plans", PlanApi, basename="plan")
router.register("subscriptions", SubscriptionApi, basename="subscription")
urlpatterns = router.urls
