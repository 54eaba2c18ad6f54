"""The console's URLs outside the admin: include("taskops.urls") at the site's root for /metrics."""

from django.urls import path

from taskops.views import metrics

app_name = "taskops"

urlpatterns = [
    path("metrics", metrics.metrics, name="metrics"),
]
