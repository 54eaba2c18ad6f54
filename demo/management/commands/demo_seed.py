"""Seed the demo: logins, periodic schedules and a first batch of runs (one bound to fail)."""

from django.core.management.base import BaseCommand

from demo import tasks
from demo.schedules import demo_schedules_seed, demo_users_seed


class Command(BaseCommand):
    help = "Create the demo logins and schedules; with --enqueue also send a first batch of tasks."

    def add_arguments(self, parser):
        parser.add_argument(
            "--enqueue", action="store_true", help="Send a few demo tasks (one fails for sure)."
        )

    def handle(self, *args, **options):
        logins = demo_users_seed()
        names = demo_schedules_seed()
        self.stdout.write(f"Demo schedules: {', '.join(names)}")
        if options["enqueue"]:
            tasks.generate_report.delay("customers")
            tasks.send_email.delay(1, "welcome", idempotency_key="welcome:1")
            tasks.flaky_call.delay("partner-api/orders", fail_rate=1.0, customer_id=4242)
            tasks.slow_task.delay(20)
            self.stdout.write("Demo tasks sent: a report, an email, a failing partner call, a slow job.")
        self.stdout.write("Demo logins (username / password):")
        for login in logins:
            self.stdout.write(f"  {login.username:<8} / {login.password:<6} ({login.role})")
