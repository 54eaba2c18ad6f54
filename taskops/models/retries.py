"""Retries made through the console: the link original -> retry, and bulk retry jobs."""

from django.conf import settings
from django.db import models


class RunRetry(models.Model):
    """One retry sent by the console: which run it retried and the id of the new run."""

    original_task_id = models.CharField(max_length=255)  # indexed first in the constraint below
    retry_task_id = models.CharField(max_length=255, unique=True)
    task_name = models.CharField(max_length=255)
    requested_at = models.DateTimeField(auto_now_add=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    job = models.ForeignKey("RetryJob", null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="retries")
    edited = models.BooleanField(default=False, help_text="sent with edited arguments")
    attempt = models.PositiveIntegerField(
        default=1, help_text="1 for the first retry of the run, 2 for the one sent again after it, …")

    class Meta:
        ordering = ["-requested_at", "-id"]
        # Written before the retry is published: two people or jobs retrying the same run at
        # once cannot both get its next attempt, so neither sends it twice by accident.
        constraints = [models.UniqueConstraint(fields=["original_task_id", "attempt"],
                                               name="taskops_retry_attempt_once")]

    def __str__(self) -> str:
        return f"{self.original_task_id} -> {self.retry_task_id}"


class RetryJob(models.Model):
    """Retry of many runs, done in chunks by the console's own Celery task; resumable."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    description = models.CharField(max_length=500)
    reason = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    total = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    refused = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0, help_text="runs retried already, left out")
    include_retried = models.BooleanField(
        default=False, help_text="runs retried already are sent again (not skipped)")
    include_succeeded = models.BooleanField(
        default=False, help_text="runs that succeeded are sent too (not refused)")
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"retry job {self.pk}: {self.description}"

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.sent - self.refused - self.skipped)


class RetryJobItem(models.Model):
    """One run of a bulk retry job and how far it got."""

    class State(models.TextChoices):
        PENDING = "pending"
        CLAIMED = "claimed"  # a retry id is assigned and may have been published
        SENT = "sent"
        REFUSED = "refused"
        SKIPPED = "skipped"  # retried already (by a person, this job or another), left out

    job = models.ForeignKey(RetryJob, on_delete=models.CASCADE, related_name="items")
    task_id = models.CharField(max_length=255)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    retry_task_id = models.CharField(max_length=255, blank=True)
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "task_id"], name="taskops_job_item_once")]
        indexes = [models.Index(fields=["job", "state", "id"], name="taskops_job_item_state")]

    def __str__(self) -> str:
        return f"{self.task_id} ({self.state})"
