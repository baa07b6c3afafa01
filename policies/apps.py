from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    name = "policies"
    verbose_name = "Policies"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Import and check every registered policy type now: a bad registration
        # stops start-up instead of failing the first request that needs it.
        from policies import registry

        registry.policy_types()
