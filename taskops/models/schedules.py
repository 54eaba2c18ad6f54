"""ScheduleVersion: every change to a periodic task, with who, when, why and a field-level diff."""

from django.conf import settings
from django.db import models


class ScheduleVersion(models.Model):
    """One kept state of a schedule, written by every console change (form, action, import, restore),
    and the state it found before a change when that was made outside the console ("found")."""

    class Action(models.TextChoices):
        CREATED = "created"
        EDITED = "edited"
        ENABLED = "enabled"
        DISABLED = "disabled"
        CLONED = "cloned"
        IMPORTED = "imported"
        RESTORED = "restored"
        DELETED = "deleted"
        FOUND = "found", "Found (made outside the console)"

    periodic_task = models.ForeignKey(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    name = models.CharField(max_length=200, help_text="the schedule's name at the time")
    created_at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=16, choices=Action.choices)
    reason = models.TextField(blank=True)
    definition = models.JSONField(
        default=dict, blank=True, help_text="the portable definition after the change ({} once deleted)"
    )
    changes = models.JSONField(
        default=list, blank=True, help_text='[{"field": ..., "before": ..., "after": ...}]'
    )
    restored_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        default_permissions = ("view",)
        permissions = [
            ("import_schedule", "Can import schedules"),
            ("run_schedule", "Can run schedules now"),
        ]
        indexes = [models.Index(fields=["name", "-created_at"], name="taskops_schedver_name")]

    def __str__(self) -> str:
        return f"{self.name} {self.action} {self.created_at:%Y-%m-%d %H:%M:%S}"
