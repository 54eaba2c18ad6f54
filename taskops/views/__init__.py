"""Thin views of the console's pages, wrapped by the admin site's admin_view."""
