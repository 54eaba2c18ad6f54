"""AuditEntry: one row per console action — who, when, what, on what, why, and the outcome."""

from django.conf import settings
from django.db import models


class AppendOnlyQuerySet(models.QuerySet):
    """No bulk update or delete of audit entries; an entry that is only started may be finished once."""

    def update(self, **kwargs):
        raise TypeError("The audit log is append-only: entries are never changed.")

    def finish(self, pk: int, *, outcome: str, message: str, detail: dict) -> None:
        """Complete a started entry with its outcome (the one change an entry ever gets)."""
        if outcome == AuditEntry.Outcome.STARTED:
            raise ValueError("An entry is finished with its outcome, not with 'started'.")
        changed = models.QuerySet.update(
            self.filter(pk=pk, outcome=AuditEntry.Outcome.STARTED),
            outcome=outcome, message=message, detail=detail)
        if changed != 1:
            raise TypeError(f"Audit entry {pk} is not a started entry: it cannot be changed.")

    def delete(self):
        raise TypeError("The audit log is append-only: entries are never deleted.")


class AuditEntry(models.Model):
    """An append-only record of one action taken through the console."""

    class Outcome(models.TextChoices):
        OK = "ok", "done"
        PARTIAL = "partial", "partly done"
        NO_REPLY = "no_reply", "no worker answered"
        FAILED = "failed", "failed"
        REFUSED = "refused", "refused"
        PENDING = "pending", "waiting for approval"
        STARTED = "started", "started, no outcome recorded"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, help_text="username at the time of the action")
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=255, blank=True)
    params = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    message = models.TextField(blank=True, help_text="the outcome as shown to the user")
    detail = models.JSONField(default=dict, blank=True, help_text="replies per worker, counts")

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        default_permissions = ("view",)
        permissions = [("export_auditentry", "Can export the audit log")]
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.target}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise TypeError("The audit log is append-only: entries are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("The audit log is append-only: entries are never deleted.")
