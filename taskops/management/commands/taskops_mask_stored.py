"""Mask by key the argument reprs of runs stored before masking (run once after upgrading, and after changing TASKOPS_MASK_KEYS)."""

from django.core.management.base import BaseCommand, CommandError

from taskops.services.retention import results_reprs_mask


class Command(BaseCommand):
    help = ("Hide values under TASKOPS_MASK_KEYS in the stored argument reprs of every run "
            "(what pages show and search reads), in batches.")

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=5000)

    def handle(self, *args, batch, **options):
        if batch < 1:
            raise CommandError("--batch must be >= 1")
        read, changed = results_reprs_mask(batch=batch)
        self.stdout.write(f"read {read} runs, masked the arguments of {changed}")
