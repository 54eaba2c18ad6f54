"""Django app configuration of the demo workload."""

from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "demo"
    verbose_name = "Demo workload"
    default_auto_field = "django.db.models.BigAutoField"
