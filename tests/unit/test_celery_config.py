"""The Celery configuration the console relies on: JSON only, extended results, events, routes."""

from taskops.conf import celery_app


def test_only_json_is_accepted_and_sent():
    conf = celery_app().conf

    assert conf.accept_content == ["json"]
    assert (conf.task_serializer, conf.result_serializer, conf.event_serializer) == ("json",) * 3


def test_results_are_extended_and_started_state_and_events_are_on():
    conf = celery_app().conf

    assert conf.result_backend == "django-db"
    assert conf.result_extended is True
    assert conf.task_track_started is True
    assert conf.worker_send_task_events is True
    assert conf.task_send_sent_event is True


def test_broker_calls_are_bounded():
    conf = celery_app().conf

    assert conf.broker_connection_timeout <= 5
    assert conf.broker_transport_options["socket_connect_timeout"] <= 5
    assert conf.task_publish_retry_policy["max_retries"] <= 3


def test_demo_tasks_are_routed_to_their_queues():
    router = celery_app().amqp.router

    def queue_of(task_name: str) -> str:
        return router.route({}, task_name)["queue"].name

    assert queue_of("demo.tasks.generate_report") == "reports"
    assert queue_of("demo.tasks.send_email") == "emails"
    assert queue_of("demo.tasks.flaky_call") == "default"
    assert {q.name for q in celery_app().conf.task_queues} == {"default", "reports", "emails"}


def test_beat_uses_the_database_scheduler():
    assert celery_app().conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
