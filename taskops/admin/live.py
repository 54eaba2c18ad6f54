"""Admin hooks of the live pages: Queues, Workers, and Tasks (the catalog, run form and revoke)."""

from django.contrib import admin

from taskops.admin.pages import ConsolePageAdmin
from taskops.models import Queue, Task, Worker
from taskops.views import catalog, queues, tasks, workers


@admin.register(Queue)
class QueueAdmin(ConsolePageAdmin):
    view_action = "queue.view"

    def page_urls(self):
        return [
            ("", queues.queue_list, "changelist"),
            ("<taskops_name:name>/", queues.queue_detail, "detail"),
            ("<taskops_name:name>/pause/", queues.queue_pause, "pause"),
            ("<taskops_name:name>/resume/", queues.queue_resume, "resume"),
            ("<taskops_name:name>/purge/", queues.queue_purge, "purge"),
            ("<taskops_name:name>/restore/", queues.queue_restore, "restore"),
        ]


@admin.register(Worker)
class WorkerAdmin(ConsolePageAdmin):
    view_action = "worker.view"

    def page_urls(self):
        return [
            ("", workers.worker_list, "changelist"),
            ("<taskops_name:name>/", workers.worker_detail, "detail"),
            ("<taskops_name:name>/pool/", workers.worker_pool, "pool"),
            ("<taskops_name:name>/autoscale/", workers.worker_autoscale, "autoscale"),
            ("<taskops_name:name>/rate-limit/", workers.worker_rate_limit, "rate_limit"),
            ("<taskops_name:name>/shutdown/", workers.worker_shutdown, "shutdown"),
        ]


@admin.register(Task)
class TaskAdmin(ConsolePageAdmin):
    """The task catalog as the list page, one task with its run form, and revoke/terminate."""

    view_action = "task.view"

    def page_urls(self):
        return [
            ("revoke/", tasks.task_revoke, "revoke"),  # first, so it wins over "<name>/"
            ("", catalog.task_catalog, "changelist"),
            ("<taskops_name:name>/", catalog.task_detail, "detail"),
            ("<taskops_name:name>/run/", catalog.task_run, "run"),
        ]
