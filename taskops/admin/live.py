"""Admin hooks of the live pages: Queues, Workers, and the task revoke action."""

from django.contrib import admin

from taskops.admin.pages import ConsolePageAdmin
from taskops.models import Queue, Task, Worker
from taskops.views import queues, tasks, workers


@admin.register(Queue)
class QueueAdmin(ConsolePageAdmin):
    view_action = "queue.view"

    def page_urls(self):
        return [
            ("", queues.queue_list, "changelist"),
            ("<str:name>/", queues.queue_detail, "detail"),
            ("<str:name>/pause/", queues.queue_pause, "pause"),
            ("<str:name>/resume/", queues.queue_resume, "resume"),
            ("<str:name>/purge/", queues.queue_purge, "purge"),
        ]


@admin.register(Worker)
class WorkerAdmin(ConsolePageAdmin):
    view_action = "worker.view"

    def page_urls(self):
        return [
            ("", workers.worker_list, "changelist"),
            ("<str:name>/", workers.worker_detail, "detail"),
            ("<str:name>/pool/", workers.worker_pool, "pool"),
            ("<str:name>/autoscale/", workers.worker_autoscale, "autoscale"),
            ("<str:name>/rate-limit/", workers.worker_rate_limit, "rate_limit"),
            ("<str:name>/shutdown/", workers.worker_shutdown, "shutdown"),
        ]


@admin.register(Task)
class TaskAdmin(ConsolePageAdmin):
    """Revoke and terminate for now; the task catalog arrives here with task operations."""

    view_action = "task.revoke"

    def has_module_permission(self, request) -> bool:
        return False  # nothing to list in the index yet

    def page_urls(self):
        return [("revoke/", tasks.task_revoke, "revoke")]
