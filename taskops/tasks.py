"""The console's own Celery tasks."""

from celery import shared_task

from taskops.conf import config
from taskops.services.retry_jobs import RetryJobBusy, retry_job_process


@shared_task(name="taskops.retry_job_run", bind=True, ignore_result=True, acks_late=True,
             max_retries=20)
def retry_job_run(self, job_id: int) -> None:
    """Send the retries of a bulk retry job, chunk by chunk (resumable; sends nothing twice)."""
    try:
        retry_job_process(job_id, owner=self.request.id or "local")
    except RetryJobBusy as busy:
        # A runner that died keeps its lease until it expires: try again after that.
        raise self.retry(exc=busy, countdown=config.retry_lease_seconds)
