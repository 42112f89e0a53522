"""A small HTTP proxy on 127.0.0.1 that injects faults in front of a real server, and logs requests.

    with FaultProxy(upstream_url, faults=["429:1", "500", "drop"], delay_s=0.3) as proxy:
        proxy.url           # point base_url here (add /v1)
        proxy.answered      # bodies the upstream answered with 200, one entry per answer
    with FaultProxy(upstream_url, rates={"429:1": 0.2, "500": 0.1, "drop": 0.05}, seed=7) as proxy:
        ...                 # each POST meets a fault at these rates (seeded), else is forwarded
        proxy.per_answer()  # requests forwarded upstream per distinct answer (1.0: nothing bought twice)

`faults` is consumed in order, one per POST: "429:N" answers 429 with Retry-After N, "500" (or any
other status code, "401") answers that status, "drop" closes the connection without an answer, "ok"
forwards; after the list, a POST meets a fault drawn at `rates` (with `seed`), or is forwarded.
`get_faults` is the same for GETs (the client's startup GET /models). Requests outside /v1/ (the
server's own /tokenize) are relayed unfaulted and kept apart, in `side`. `delay_s` is added to every
forwarded request (a hosted API's latency); it is read per request, so a test may change it
mid-run. A request whose client hangs up during the delay is not forwarded (`cancelled`), as a
server stops computing an answer nobody waits for; `held` is how many wait in the delay now.
Written by hand because the test needs exactly these faults at exactly these moments, which no
proxy library offers without a second process.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class FaultProxy:
    def __init__(self, upstream: str, faults: list[str] | None = None, delay_s: float = 0.0,
                 body: bytes | None = None, replay: bool = False, rates: dict[str, float] | None = None,
                 seed: int = 0, get_faults: list[str] | None = None) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.faults = list(faults or [])
        self.get_faults = list(get_faults or [])
        self.rates = dict(rates or {})
        assert sum(self.rates.values()) <= 1
        self._rng = random.Random(seed)
        self.delay_s = delay_s
        self.held = 0  # requests waiting in the delay now
        self.cancelled = 0  # requests whose client hung up during the delay: never forwarded
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, in order
        self.fixed_body = body  # answer every request with this (e.g. an HTML page), for bad-server tests
        # replay: a request body seen before gets the upstream's earlier answer (after `delay_s`), so a
        # benchmark measures the client against a fixed-latency API rather than this machine's CPU.
        self.replay: dict[str, tuple[int, bytes, str]] | None = {} if replay else None
        self.answered: list[str] = []  # sha256 of each request body the upstream answered with 200
        self.bodies: list[bytes] = []  # those bodies themselves, in the same order
        self.side: list[tuple[str, str]] = []  # requests to the server's own endpoints (/tokenize)
        self.seen: list[str] = []  # every fault or forward, in order
        self.headers_seen: list[dict[str, str]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                data = self.rfile.read(length) if length else b""
                # The server's own endpoints beside the API (llama.cpp's /tokenize, which the backend asks
                # once per label set): relayed as they are, never faulted nor counted with the API's requests.
                side = not self.path.startswith("/v1/")
                with proxy._lock:
                    if side:
                        proxy.side.append((self.command, self.path))
                        fault = "ok"
                    else:
                        proxy.headers_seen.append(dict(self.headers))
                        proxy.requests.append((self.command, self.path))
                        fault = proxy._fault(self.command)
                        proxy.seen.append(fault)
                if proxy.fixed_body is not None:
                    return self._send(200, proxy.fixed_body, {"content-type": "text/html"})
                if fault.startswith("429"):
                    wait = fault.split(":", 1)[1] if ":" in fault else "1"
                    return self._send(429, b'{"error": {"message": "slow down"}}',
                                      {"content-type": "application/json", "retry-after": wait})
                if fault == "500":
                    return self._send(500, b'{"error": {"message": "boom"}}', {"content-type": "application/json"})
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                if fault.isdigit():
                    return self._send(int(fault), b'{"error": {"message": "injected"}}',
                                      {"content-type": "application/json"})
                if proxy.delay_s and not self._wait(proxy.delay_s):
                    self.close_connection = True
                    with proxy._lock:
                        proxy.cancelled += 1
                    return None
                digest = hashlib.sha256(data).hexdigest()
                if proxy.replay is not None and digest in proxy.replay:
                    status, payload, ctype = proxy.replay[digest]
                    return self._send(status, payload, {"content-type": ctype})
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=300)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "connection"}}
                    conn.request(self.command, self.path, body=data or None, headers=headers)
                    resp = conn.getresponse()
                    payload = resp.read()
                except OSError:  # upstream down: the client sees what it would see without the proxy
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                finally:
                    conn.close()
                if resp.status == 200 and self.command == "POST" and not side:
                    with proxy._lock:
                        proxy.answered.append(digest)
                        proxy.bodies.append(data or b"")
                        if proxy.replay is not None:
                            proxy.replay[digest] = (200, payload, resp.getheader("content-type") or "application/json")
                return self._send(resp.status, payload, {"content-type": resp.getheader("content-type") or
                                                         "application/json"})

            def _wait(self, seconds: float) -> bool:
                """Sleep `seconds`; False as soon as the client hangs up."""
                end = time.monotonic() + seconds
                with proxy._lock:
                    proxy.held += 1
                try:
                    while (left := end - time.monotonic()) > 0:
                        readable, _, _ = select.select([self.connection], [], [], min(left, 0.05))
                        if readable:
                            try:
                                if not self.connection.recv(1, socket.MSG_PEEK):
                                    return False
                            except OSError:
                                return False
                            time.sleep(min(left, 0.05))  # a next request already sent on this connection
                    return True
                finally:
                    with proxy._lock:
                        proxy.held -= 1

            def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _relay  # noqa: N815
            do_POST = _relay  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _fault(self, method: str) -> str:
        """The fault this request meets (under the lock): the ordered lists first, then `rates`."""
        if method == "GET":
            return self.get_faults.pop(0) if self.get_faults else "ok"
        if self.faults:
            return self.faults.pop(0)
        draw, edge = self._rng.random(), 0.0
        for fault, rate in self.rates.items():
            edge += rate
            if draw < edge:
                return fault
        return "ok"

    def posts(self) -> int:
        """POST requests that reached the proxy (faulted or not)."""
        return sum(1 for method, _ in self.requests if method == "POST")

    def per_answer(self) -> float:
        """Requests forwarded upstream and answered, per distinct answer (1.0: none bought twice)."""
        return len(self.answered) / max(len(set(self.answered)), 1)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def request_bodies(self) -> list[dict[str, Any]]:  # pragma: no cover - debugging aid
        return [json.loads(x) for x in self.bodies]
