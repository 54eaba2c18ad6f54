"""Demo tasks: a report writer, a flaky partner call, an email sender and a slow job."""

from __future__ import annotations

import csv
import hashlib
import random
import time
import uuid
from datetime import date, datetime
from pathlib import Path

from celery import shared_task
from celery.utils.log import get_task_logger
from django.conf import settings
from django.core.mail import send_mail

logger = get_task_logger(__name__)


class PartnerServiceError(Exception):
    """The (simulated) partner API answered with an error."""


def _report_path(report: str, day: date) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in report)[:60] or "report"
    return Path(settings.MEDIA_ROOT) / "reports" / f"{safe}-{day.isoformat()}.csv"


@shared_task
def generate_report(report: str, day: str | None = None, rows: int = 20) -> str:
    """Write the CSV of `report` for `day` (ISO date, default today) and return the file's path.

    Idempotent: the same report and day always write the same file with the same content.
    """
    when = date.fromisoformat(day) if day else date.today()
    seed = int(hashlib.sha256(f"{report}:{when}".encode()).hexdigest()[:8], 16)
    rng = random.Random(seed)
    path = _report_path(report, when)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["region", "orders", "revenue"])
        for index in range(rows):
            writer.writerow([f"region-{index:02d}", rng.randint(10, 500), rng.randint(1_000, 90_000)])
    tmp.replace(path)
    logger.info("report %s for %s written to %s", report, when, path)
    return str(path)


@shared_task(
    bind=True,
    autoretry_for=(PartnerServiceError,),
    retry_backoff=1,
    retry_backoff_max=8,
    retry_jitter=True,
    max_retries=2,
)
def flaky_call(self, endpoint: str, fail_rate: float = 0.3, customer_id: int | None = None) -> dict:
    """Call a partner endpoint that fails `fail_rate` of the time; retries with exponential backoff.

    After its retries are spent the run ends in FAILURE with a real traceback.
    """
    if random.random() < fail_rate:
        raise PartnerServiceError(
            f"partner endpoint {endpoint!r} answered 503 for customer {customer_id} "
            f"(attempt {self.request.retries + 1} of {self.max_retries + 1})"
        )
    return {"endpoint": endpoint, "customer_id": customer_id, "status": 200}


@shared_task(bind=True)
def send_email(self, user_id: int, template: str, idempotency_key: str | None = None) -> dict:
    """Send the `template` email to user `user_id` once per idempotency key (default: this task id)."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from demo.models import SentEmail

    key = idempotency_key or f"{template}:{user_id}:{self.request.id}"
    user = get_user_model().objects.filter(pk=user_id).first()
    address = user.email if user and user.email else f"user-{user_id}@example.com"
    with transaction.atomic():
        _, created = SentEmail.objects.get_or_create(
            key=key, defaults={"user_id": user_id, "template": template, "address": address}
        )
        if not created:
            return {"user_id": user_id, "template": template, "sent": False, "reason": "already sent"}
        # A failure here rolls the marker back, so a retry sends the email again.
        send_mail(
            subject=f"[TaskOps demo] {template}",
            message=f"Hello {user.get_username() if user else user_id}, this is the {template} email.",
            from_email=None,
            recipient_list=[address],
        )
    return {"user_id": user_id, "template": template, "sent": True, "to": address}


@shared_task(bind=True)
def slow_task(self, seconds: float = 30, step: float = 1.0) -> dict:
    """Work for `seconds`, reporting progress; revoke with terminate to stop it mid-run."""
    started = datetime.now().isoformat()
    deadline = time.monotonic() + seconds
    done = 0.0
    while time.monotonic() < deadline:
        time.sleep(step)
        done += step
        self.update_state(state="PROGRESS", meta={"done": done, "total": seconds})
    return {"seconds": seconds, "started": started}


@shared_task(bind=True)
def sync_invoices(self, account_id: uuid.UUID, since: datetime, note: str = "") -> dict:
    """Pull the invoices of `account_id` changed since `since` from the billing partner.

    Fails while the partner is down (demo.models.PartnerStatus "billing"); retry the failed
    runs from the console once it is back. Reports exactly what it received.
    """
    from demo.models import PartnerStatus

    if PartnerStatus.is_down("billing"):
        raise PartnerServiceError(f"billing partner is down: cannot sync account {account_id}")
    return {
        "account_id": str(account_id),
        "since": since.isoformat(),
        "note_length": len(note),
        "note_sha256": hashlib.sha256(note.encode()).hexdigest(),
        "types": [type(account_id).__name__, type(since).__name__, type(note).__name__],
        "queue": (self.request.delivery_info or {}).get("routing_key"),
        "priority": (self.request.delivery_info or {}).get("priority"),
    }
