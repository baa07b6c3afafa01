from rest_framework.routers import SimpleRouter

from .views import PolicyAttachmentApi

router = SimpleRouter()
router.register("policies", PolicyAttachmentApi, basename="policy")
urlpatterns = router.urls
