"""The console's admin pages: one module per area, registered on the default admin site."""
