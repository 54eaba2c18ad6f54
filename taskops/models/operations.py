"""State the console keeps about the cluster: paused queues, revokes, workers seen, depth history."""

from django.conf import settings
from django.db import models


class QueuePause(models.Model):
    """A queue paused cluster-wide; workers that start later are paused too while this exists."""

    queue = models.CharField(max_length=255, unique=True)
    paused_at = models.DateTimeField(auto_now_add=True)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True)
    workers = models.JSONField(
        default=list, blank=True, help_text="workers told to stop consuming (resume tells them again)"
    )

    def __str__(self) -> str:
        return f"{self.queue} (paused)"


class PendingRevoke(models.Model):
    """A revoke the console issued; workers apply it when they start, so it survives restarts."""

    task_id = models.CharField(max_length=255, unique=True)
    task_name = models.CharField(max_length=255, blank=True)
    terminate = models.BooleanField(default=False)
    signal = models.CharField(max_length=16, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True, db_index=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_by = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"revoke {self.task_id}"


class WorkerSeen(models.Model):
    """A worker the console has seen: kept while offline so it can be shown as such, then aged out.

    What the worker said about itself (it started, it began a warm shutdown, it said goodbye) and
    when it last answered beat's sampler are the facts taskops.liveness turns into its state.
    """

    name = models.CharField(max_length=255, unique=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(db_index=True)
    online = models.BooleanField(default=True, help_text="believed alive: not said goodbye, not "
                                 "silent past TASKOPS_WORKER_OFFLINE_AFTER_SECONDS")
    queues = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField(null=True, blank=True, help_text="it said it started")
    ready_at = models.DateTimeField(null=True, blank=True,
                                    help_text="it said it is ready (it consumes, and answers)")
    last_answered_at = models.DateTimeField(null=True, blank=True,
                                            help_text="it last answered beat's sampler")
    stopping_since = models.DateTimeField(null=True, blank=True,
                                          help_text="it said it began a warm shutdown")
    goodbye_at = models.DateTimeField(null=True, blank=True, help_text="it said goodbye")

    def __str__(self) -> str:
        return self.name


class QueueDepthSample(models.Model):
    """One reading of a queue's depth, for the sparklines (kept for TASKOPS_DEPTH_RETENTION)."""

    queue = models.CharField(max_length=255)
    sampled_at = models.DateTimeField()
    depth = models.BigIntegerField()
    in_flight = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["queue", "-sampled_at"], name="taskops_depth_queue_time")]
        get_latest_by = "sampled_at"

    def __str__(self) -> str:
        return f"{self.queue}={self.depth} at {self.sampled_at:%H:%M:%S}"


class QueueSeen(models.Model):
    """A queue beat's sampler has seen, and when a worker last consumed it (for the idle section)."""

    queue = models.CharField(max_length=255, unique=True)
    first_seen_at = models.DateTimeField()
    last_consumed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.queue
