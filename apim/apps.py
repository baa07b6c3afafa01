from django.apps import AppConfig


class ApimConfig(AppConfig):
    name = "apim"
    verbose_name = "API catalog"
    default_auto_field = "django.db.models.BigAutoField"
