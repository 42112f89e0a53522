"""A small HTTP proxy on 127.0.0.1 that injects faults in front of a real server, and logs requests.

    with FaultProxy(upstream_url, faults=["429:1", "500", "drop"], delay_s=0.3) as proxy:
        proxy.url           # point base_url here (add /v1)
        proxy.answered      # bodies the upstream answered with 200, one entry per answer

`faults` is consumed in order, one per POST: "429:N" answers 429 with Retry-After N, "500" answers
500, "drop" closes the connection without an answer, "ok" forwards; after the list, everything is
forwarded. `delay_s` is added to every forwarded request (a hosted API's latency). Written by hand
because the test needs exactly these faults at exactly these moments, which no proxy library
offers without a second process.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class FaultProxy:
    def __init__(self, upstream: str, faults: list[str] | None = None, delay_s: float = 0.0,
                 body: bytes | None = None, replay: bool = False) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.faults = list(faults or [])
        self.delay_s = delay_s
        self.fixed_body = body  # answer every request with this (e.g. an HTML page), for bad-server tests
        # replay: a request body seen before gets the upstream's earlier answer (after `delay_s`), so a
        # benchmark measures the client against a fixed-latency API rather than this machine's CPU.
        self.replay: dict[str, tuple[int, bytes, str]] | None = {} if replay else None
        self.answered: list[str] = []  # sha256 of each request body the upstream answered with 200
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
                with proxy._lock:
                    proxy.headers_seen.append(dict(self.headers))
                    fault = proxy.faults.pop(0) if (self.command == "POST" and proxy.faults) else "ok"
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
                if proxy.delay_s:
                    time.sleep(proxy.delay_s)
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
                if resp.status == 200 and self.command == "POST":
                    with proxy._lock:
                        proxy.answered.append(digest)
                        if proxy.replay is not None:
                            proxy.replay[digest] = (200, payload, resp.getheader("content-type") or "application/json")
                return self._send(resp.status, payload, {"content-type": resp.getheader("content-type") or
                                                         "application/json"})

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

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def request_bodies(self) -> list[dict[str, Any]]:  # pragma: no cover - debugging aid
        return [json.loads(x) for x in self.answered]
