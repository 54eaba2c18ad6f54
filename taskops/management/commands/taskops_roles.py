"""Create or repair the console's groups and their permissions."""

from django.core.management.base import BaseCommand

from taskops.roles import roles_sync


class Command(BaseCommand):
    help = "Create the Support, Operations and Managers groups and set their permissions."

    def handle(self, *args, **options):
        for group, count in roles_sync(using=options.get("database") or "default").items():
            self.stdout.write(f"{group}: {count} permissions")
