from rest_framework.routers import SimpleRouter

from .views import DeclarativeConfigApi

router = SimpleRouter()
router.register("config", DeclarativeConfigApi, basename="config")
urlpatterns = router.urls
