"""URL configuration of the console deployment: the admin is the console."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = admin.site.site_title = "TaskOps Console"
admin.site.site_url = None  # the console is the site: no "View site" link

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("", include("taskops.urls")),  # /metrics
]
