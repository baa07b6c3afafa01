from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from analytics import dashboard
from apim import echo, health
from apim.admin.login_throttle import throttled_login

admin.site.site_header = "apim console"
admin.site.site_title = "apim"
admin.site.index_title = "API management"

urlpatterns = [
    path("health", health.liveness, name="health"),
    path("health/ready", health.readiness, name="health-ready"),
    # Before admin.site.urls, whose catch-all would answer these paths with a 404.
    path("admin/analytics/", dashboard.analytics_page_view, name="admin-analytics"),
    path("admin/analytics/export.csv", dashboard.analytics_csv_view, name="admin-analytics-csv"),
    path("admin/login/", throttled_login, name="admin-login-throttled"),  # failed sign-ins are counted
    path("admin/", admin.site.urls),
    path("api/v1/", include("apim.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("", include("django_prometheus.urls")),
]

if settings.APIM_DEMO_ECHO:
    urlpatterns += [re_path(r"^_demo/echo(?P<path>/.*)?$", echo.echo, name="demo-echo")]
