from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from apim import echo, health

admin.site.site_header = "apim console"
admin.site.site_title = "apim"
admin.site.index_title = "API management"

urlpatterns = [
    path("health", health.liveness, name="health"),
    path("health/ready", health.readiness, name="health-ready"),
    path("admin/", admin.site.urls),
    path("", include("django_prometheus.urls")),
]

if settings.APIM_DEMO_ECHO:
    urlpatterns += [re_path(r"^_demo/echo(?P<path>/.*)?$", echo.echo, name="demo-echo")]
