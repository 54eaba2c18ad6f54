"""RabbitMQ's management API as the broker adapter asks it: credentials only in the header, bounded, never shown."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from taskops import broker


class _Api(BaseHTTPRequestHandler):
    """Answers /api/queues/<vhost> like the management plugin; `redirect_to` answers 302 instead."""

    redirect_to = ""
    seen: list[tuple[str, str]] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).seen.append((self.path, self.headers.get("Authorization", "")))
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.end_headers()
            return
        body = json.dumps([{"name": "reports", "messages_unacknowledged": 3},
                           {"name": "w1@h.celery.pidbox", "messages_unacknowledged": 0}]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def api_server():
    _Api.seen, _Api.redirect_to = [], ""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_credentials_travel_in_the_header_and_the_vhost_is_quoted(api_server, settings):
    settings.TASKOPS_RABBITMQ_API = f"http://ops%40site:p%3Ass@{api_server}/"

    unacked = broker._rabbitmq_api_unacked("/", timeout=2)

    assert unacked == {"reports": 3, "w1@h.celery.pidbox": 0}
    path, authorization = _Api.seen[0]
    assert path == "/api/queues/%2F?columns=name,messages_unacknowledged"
    assert authorization == "Basic b3BzQHNpdGU6cDpzcw=="  # base64 of "ops@site:p:ss"


def test_a_redirect_is_not_followed_with_the_credentials(api_server, settings):
    _Api.redirect_to = "http://127.0.0.1:9/elsewhere"
    settings.TASKOPS_RABBITMQ_API = f"http://guest:s3cret@{api_server}/"

    with pytest.raises(broker._ApiUnanswered, match="answered 302") as refused:
        broker._rabbitmq_api_unacked("/", timeout=2)

    assert len(_Api.seen) == 1 and "s3cret" not in str(refused.value)


@pytest.mark.parametrize("address", [
    "guest:s3cret@127.0.0.1:15672",  # no scheme
    "ftp://guest:s3cret@127.0.0.1/",
    "http://guest:s3cret@127.0.0.1:port/",
    "http://guest:s3cret@127.0.0.1:1/",  # nothing listens there
])
def test_an_unusable_address_is_said_without_its_credentials(address, settings):
    settings.TASKOPS_RABBITMQ_API = address

    with pytest.raises(broker._ApiUnanswered) as refused:
        broker._rabbitmq_api_unacked("/", timeout=1)

    assert "s3cret" not in str(refused.value) and "guest" not in str(refused.value)


def test_no_time_left_asks_nothing(api_server, settings):
    settings.TASKOPS_RABBITMQ_API = f"http://guest:guest@{api_server}/"

    with pytest.raises(broker._ApiUnanswered, match="no time was left"):
        broker._rabbitmq_api_unacked("/", timeout=0)

    assert _Api.seen == []
