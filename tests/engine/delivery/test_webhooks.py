"""The engine's web endpoint as a server on a real socket: slow and half-sent requests hold no worker and are
closed by the idle timeout or the request deadline, a normal request is served meanwhile, the answers carry the
headers an API should, and `shutdown()` closes everything, as SIGTERM on `python -m engine run` does."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy.orm import Session, sessionmaker

from engine.core.settings import Settings
from engine.delivery.webhooks import WebEndpoint, start_webhook_server
from tests.app_process import free_port
from tests.engine_process import ROOT, start_engine
from tests.waiting import wait_until

HALF_SENT_POST = (
    b"POST /webhooks/mailgun HTTP/1.1\r\nHost: desk.example\r\nContent-Type: application/json\r\n"
    b'Content-Length: 5000\r\n\r\n{"signature": '
)


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite only: what is tested here is the server in front of the application, not the database."""
    return sqlite_url


@pytest.fixture
def desk(settings: Settings) -> Settings:
    settings.DESK_PUBLIC_URL = "https://desk.example"
    return settings


@contextlib.contextmanager
def serving(factory: sessionmaker[Session], settings: Settings) -> Iterator[WebEndpoint]:
    endpoint = start_webhook_server(0, factory, settings)
    try:
        yield endpoint
    finally:
        endpoint.shutdown()


def closed_by_server(connection: socket.socket) -> bool:
    """Whether the server has closed this connection (end of stream or reset), without waiting."""
    connection.setblocking(False)
    try:
        return connection.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def half_sent_posts(port: int, count: int) -> list[socket.socket]:
    connections = []
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port), timeout=10)
        connection.sendall(HALF_SENT_POST)
        connections.append(connection)
    return connections


def test_half_sent_posts_hold_no_worker_a_normal_request_is_served_and_idle_ones_are_closed(
    session_factory: sessionmaker[Session], desk: Settings
) -> None:
    desk.WEB_THREADS = 2
    desk.WEB_IDLE_TIMEOUT_SECONDS = 2
    desk.WEB_REQUEST_TIMEOUT_SECONDS = 600  # so the idle timeout is what closes them here
    with serving(session_factory, desk) as endpoint:
        stalled = half_sent_posts(endpoint.server_port, 300)
        try:
            answered = requests.get(f"http://127.0.0.1:{endpoint.server_port}/r/not-a-link", timeout=30)
            assert answered.status_code == 400 and "This link is not valid" in answered.text
            workers = [thread for thread in threading.enumerate() if thread.name.startswith("waitress-")]
            assert len(workers) <= desk.WEB_THREADS
            wait_until(
                lambda: all(closed_by_server(connection) for connection in stalled),
                timeout=120,
                what="the server to close 300 idle half-sent requests",
            )
            assert requests.get(f"http://127.0.0.1:{endpoint.server_port}/r/x", timeout=30).status_code == 400
        finally:
            for connection in stalled:
                connection.close()


def test_a_request_trickled_in_byte_by_byte_is_closed_at_the_request_deadline(
    session_factory: sessionmaker[Session], desk: Settings
) -> None:
    desk.WEB_IDLE_TIMEOUT_SECONDS = 600  # the trickle keeps the connection busy: only the deadline closes it
    desk.WEB_REQUEST_TIMEOUT_SECONDS = 2
    stop = threading.Event()
    with serving(session_factory, desk) as endpoint:
        connection = socket.create_connection(("127.0.0.1", endpoint.server_port), timeout=10)
        connection.sendall(b"POST /webhooks/mailgun HTTP/1.1\r\n")

        def trickle() -> None:
            while not stop.wait(0.2):
                try:
                    connection.sendall(b"X")
                except OSError:
                    return

        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        try:
            wait_until(lambda: closed_by_server(connection), timeout=120, what="the request deadline to close it")
            assert requests.get(f"http://127.0.0.1:{endpoint.server_port}/r/x", timeout=30).status_code == 400
        finally:
            stop.set()
            sender.join()
            connection.close()


def test_a_body_over_the_limit_is_refused_before_it_is_read(
    session_factory: sessionmaker[Session], desk: Settings
) -> None:
    with serving(session_factory, desk) as endpoint:
        answered = requests.post(
            f"http://127.0.0.1:{endpoint.server_port}/webhooks/mailgun",
            data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
    assert answered.status_code == 413


def test_answers_carry_api_headers_and_the_page_a_policy_that_forbids_framing(
    session_factory: sessionmaker[Session], desk: Settings
) -> None:
    with serving(session_factory, desk) as endpoint:
        base = f"http://127.0.0.1:{endpoint.server_port}"
        page = requests.get(f"{base}/r/not-a-link", timeout=30)
        api = requests.get(f"{base}/webhooks/unknown", timeout=30)
    assert api.status_code == 404 and page.status_code == 400
    for answered in (page, api):
        assert answered.headers["X-Content-Type-Options"] == "nosniff"
        assert answered.headers["Cache-Control"] == "no-store"
        assert answered.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in answered.headers["Content-Security-Policy"]
        assert "default-src 'none'" in answered.headers["Content-Security-Policy"]
        assert "Server" not in answered.headers
    assert page.headers["Content-Type"].startswith("text/html")
    assert "script-src" not in page.headers["Content-Security-Policy"]


def test_shutdown_closes_open_connections_and_frees_the_port(
    session_factory: sessionmaker[Session], desk: Settings
) -> None:
    endpoint = start_webhook_server(0, session_factory, desk)
    port = endpoint.server_port
    stalled = half_sent_posts(port, 5)
    endpoint.shutdown()
    endpoint.shutdown()  # a second call is harmless
    try:
        wait_until(lambda: all(closed_by_server(c) for c in stalled), timeout=60, what="connections closed")
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/r/x", timeout=10)
    finally:
        for connection in stalled:
            connection.close()


def test_sigterm_stops_an_engine_whose_endpoint_holds_half_sent_requests(desk: Settings) -> None:
    port = free_port()
    engine = start_engine(desk, "run", "--webhook-port", str(port), cwd=ROOT, DESK_PUBLIC_URL=desk.DESK_PUBLIC_URL)
    stalled: list[socket.socket] = []
    try:

        def answering() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/r/x", timeout=5).status_code == 400
            except requests.ConnectionError:
                return False

        wait_until(lambda: answering() or engine.poll() is not None, timeout=120, what="the engine's endpoint")
        assert engine.poll() is None, engine.stdout.read() if engine.stdout else ""
        stalled = half_sent_posts(port, 20)
        engine.send_signal(signal.SIGTERM)
        output, _ = engine.communicate(timeout=120)
        assert engine.returncode == 0, output
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.communicate()
        for connection in stalled:
            connection.close()
