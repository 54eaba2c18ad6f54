"""Delete old task runs in batches (a cron job or a periodic task can run it)."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from taskops.services.retention import results_cleanup


class Command(BaseCommand):
    help = "Delete finished task runs older than --days, in batches."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=float, required=True, help="keep runs newer than this")
        parser.add_argument("--batch", type=int, default=5000)
        parser.add_argument("--state", action="append", default=[],
                            help="only these states (repeat); default SUCCESS, FAILURE, REVOKED")

    def handle(self, *args, days, batch, state, **options):
        if days < 0 or batch < 1:
            raise CommandError("--days must be >= 0 and --batch >= 1")
        deleted = results_cleanup(older_than=timezone.now() - timedelta(days=days), batch=batch,
                                  states=tuple(state))
        self.stdout.write(f"deleted {deleted} runs older than {days:g} days")
