"""URL configuration of the console deployment: the admin is the console."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = admin.site.site_title = "TaskOps Console"
admin.site.site_url = None  # the console is the site: no "View site" link
# The console's lists are wide (runs, schedules): they get the whole width; the index (the
# dashboard) and the breadcrumbs lead everywhere.
admin.site.enable_nav_sidebar = False

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("", include("taskops.urls")),  # /metrics
]
