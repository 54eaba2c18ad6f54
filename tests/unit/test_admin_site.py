"""The console's pages belong to the admin site they are mounted on."""

from __future__ import annotations


def test_console_pages_render_with_the_admin_site_whose_url_led_there(rf, admin_user):
    """A project may mount the console's admins on its own AdminSite: pages take that site's
    context (header, each_context), never the global admin.site's."""
    from django.contrib.admin import AdminSite

    from taskops.admin.pages import site_view
    from taskops.views.common import render_page

    other = AdminSite(name="other")
    other.site_header = "Other operations"
    view = site_view(other, lambda request: render_page(request, "admin/taskops/queue_list.html",
                                                        "Queues", {}))
    request = rf.get("/other/queues/")
    request.user = admin_user

    response = view(request)

    assert response.context_data["site_header"] == "Other operations"
