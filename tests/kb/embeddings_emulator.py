"""A tiny stand-in for the OpenAI / Azure OpenAI embeddings API on 127.0.0.1, for wire-level tests.

Request (both): POST JSON {"input": [str, ...], "model": str, "encoding_format": "float" | "base64"}
  OpenAI-compatible: POST {base_url}/embeddings, header `Authorization: Bearer <key>`
  Azure:             POST {endpoint}/openai/deployments/{deployment}/embeddings?api-version=..., header `api-key`
Response: {"object": "list", "model": str, "data": [{"object": "embedding", "index": i, "embedding": [...]}],
           "usage": {"prompt_tokens": n, "total_tokens": n}}; with base64, each embedding is little-endian float32.
Vectors are hashed bags of words (DIMENSION wide): texts sharing words are near, so search still works.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

DIMENSION = 64


def bag_of_words(text: str) -> np.ndarray:
    vector = np.zeros(DIMENSION, dtype=np.float32)
    for word in re.findall(r"\w+", text.lower()):
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % DIMENSION] += 1.0  # noqa: S324 - not security
    vector[0] += 0.01
    return vector / np.linalg.norm(vector)


class EmbeddingsEmulator:
    """Serves embeddings on an ephemeral loopback port; remembers each request's path, headers and body."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._hold_next = threading.Event()
        self.holding = threading.Event()
        """Set while the held request waits: the caller is inside its embedding call."""
        self.release = threading.Event()
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                emulator.requests.append(
                    {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                )
                if not self.path.split("?")[0].endswith("/embeddings"):
                    self.send_error(404)
                    return
                if emulator._hold_next.is_set():
                    emulator._hold_next.clear()
                    emulator.holding.set()
                    emulator.release.wait(timeout=120)
                    emulator.holding.clear()
                inputs = body.get("input", [])
                inputs = [inputs] if isinstance(inputs, str) else inputs
                data = []
                for index, text in enumerate(inputs):
                    vector = bag_of_words(text if isinstance(text, str) else " ".join(map(str, text)))
                    encoded: Any = (
                        base64.b64encode(vector.astype("<f4").tobytes()).decode()
                        if body.get("encoding_format") == "base64"
                        else vector.tolist()
                    )
                    data.append({"object": "embedding", "index": index, "embedding": encoded})
                payload = json.dumps(
                    {
                        "object": "list",
                        "model": body.get("model", ""),
                        "data": data,
                        "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def hold_next_request(self) -> None:
        """The next embeddings request is answered only once `release` is set (a long call, caught in the middle)."""
        self.release.clear()
        self._hold_next.set()

    def __enter__(self) -> EmbeddingsEmulator:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
