"""PendingAction: a dangerous action waiting for a second person's approval (TASKOPS_REQUIRE_APPROVAL)."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class PendingAction(models.Model):
    """An action asked for by one user and carried out only when another user with its permission approves."""

    class State(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved", "approved and carried out"
        REJECTED = "rejected"
        EXPIRED = "expired"
        CANCELLED = "cancelled"

    action = models.CharField(max_length=64)
    target = models.CharField(max_length=255, blank=True)
    params = models.JSONField(default=dict, blank=True)
    reason = models.TextField()
    requested_at = models.DateTimeField(auto_now_add=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_name = models.CharField(max_length=150)
    expires_at = models.DateTimeField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by_name = models.CharField(max_length=150, blank=True)
    outcome = models.CharField(max_length=16, blank=True)
    message = models.TextField(blank=True, help_text="the outcome once carried out")

    class Meta:
        ordering = ["-requested_at", "-id"]
        default_permissions = ("view",)
        verbose_name = "pending approval"
        verbose_name_plural = "pending approvals"
        indexes = [models.Index(fields=["state", "-requested_at"], name="taskops_pending_state")]

    def __str__(self) -> str:
        return f"{self.action} {self.target} ({self.state_now})"

    @property
    def state_now(self) -> str:
        """The state as of now: a pending request past its expiry is expired, written or not."""
        if self.state == self.State.PENDING and self.expires_at <= timezone.now():
            return self.State.EXPIRED
        return self.state
