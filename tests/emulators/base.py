"""A small threaded HTTP(S) server that vendor emulators build on, with scripted faults and a request log.

Each emulator answers the vendor's documented paths; `faults` lets a test make the next matching
requests fail the way real services do (429 with Retry-After, 5xx, slow answers, broken or cut-off bodies).
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    truncated: bool = False
    chunked: bool = False
    """Sent with `Transfer-Encoding: chunked` and no Content-Length, as a server streaming a file does."""

    @classmethod
    def json(cls, payload: Any, status: int = 200, **headers: str) -> Response:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **headers})

    @classmethod
    def cut_off(cls, payload: Any) -> Response:
        """A 200 whose connection drops halfway through the body it announced (a proxy or network failure)."""
        return cls(200, json.dumps(payload).encode(), {"Content-Type": "application/json"}, truncated=True)


SLOWER_THAN_ANY_TIMEOUT = 120.0
"""A fault's delay that outlasts every client timeout a test sets, however busy the machine: the answer waits until
the emulator stops (`Emulator.stopping`), so the test never waits for it."""


@dataclass
class Fault:
    """Answer the next `times` requests whose path starts with `path` (and, when set, whose method is `method`)
    with this instead (after `delay` seconds)."""

    response: Response | None = None
    path: str = ""
    times: int = 1
    delay: float = 0.0
    method: str | None = None

    def matches(self, request: Request) -> bool:
        return request.path.startswith(self.path) and self.method in (None, request.method)


class Emulator:
    """Subclasses implement `handle(request) -> Response`; `url` is where the server listens."""

    def __init__(self, *, tls: tuple[Path, Path] | None = None) -> None:
        self.faults: list[Fault] = []
        self.requests: list[Request] = []
        self.lock = threading.RLock()
        self.tls = tls
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()
        """Set when the emulator stops: a slowed answer waits for its delay or for this, so none outlives the test."""

    @property
    def url(self) -> str:
        assert self._server is not None
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def fail(
        self,
        response: Response | None = None,
        *,
        path: str = "",
        times: int = 1,
        delay: float = 0.0,
        method: str | None = None,
    ) -> None:
        with self.lock:
            self.faults.append(Fault(response, path, times, delay, method))

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def paths(self, method: str | None = None) -> list[str]:
        with self.lock:
            return [r.path for r in self.requests if method is None or r.method == method]

    def _dispatch(self, request: Request) -> Response:
        with self.lock:
            self.requests.append(request)
            fault = next((f for f in self.faults if f.matches(request)), None)
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
        if fault is not None:
            if fault.delay:
                self.stopping.wait(fault.delay)
            if fault.response is not None:
                return fault.response
        try:
            return self.handle(request)
        except Exception as error:  # an emulator bug must show as a 500, not a hung client
            return Response.json({"error": {"message": f"emulator: {type(error).__name__}: {error}"}}, 500)

    def start(self) -> Emulator:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else headers and body in two writes meet delayed ACKs: 40 ms a call

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query, keep_blank_values=True),
                    {key.lower(): value for key, value in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                response = emulator._dispatch(request)
                try:
                    self.send_response(response.status)
                    for key, value in response.headers.items():
                        self.send_header(key, value)
                    if response.chunked:
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        for start in range(0, len(response.body), 64 * 1024):
                            piece = response.body[start : start + 64 * 1024]
                            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                        self.wfile.write(b"0\r\n\r\n")
                        return
                    self.send_header("Content-Length", str(len(response.body)))
                    self.end_headers()
                    self.wfile.write(response.body[: len(response.body) // 2] if response.truncated else response.body)
                    if response.truncated:
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def running(emulator: Emulator) -> Iterator[Emulator]:
    """For fixtures: `yield from running(SomeEmulator(...))`."""
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
