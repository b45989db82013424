"""The worker's own HTTP endpoint: `/metrics`, `/healthz` and `/readyz`.

Celery has no HTTP server, so `sluice worker` starts this one in its main process. It
aggregates the metrics that every pool process wrote under PROMETHEUS_MULTIPROC_DIR.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import text

from worker.db import session_scope
from worker.redis_client import get_redis

logger = logging.getLogger(__name__)


def readiness_problem() -> str | None:
    """Return what keeps the worker from running jobs, or None when it can."""
    try:
        with session_scope() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:
        return f"database unreachable: {type(exc).__name__}"
    try:
        get_redis().ping()
    except Exception as exc:
        return f"redis unreachable: {type(exc).__name__}"
    return None


class _Handler(BaseHTTPRequestHandler):
    registry: CollectorRegistry

    def do_GET(self) -> None:
        if self.path == "/metrics":
            self._send(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        elif self.path == "/healthz":
            self._send(200, b'{"status": "ok"}', "application/json")
        elif self.path == "/readyz":
            problem = readiness_problem()
            if problem is None:
                self._send(200, b'{"status": "ready"}', "application/json")
            else:
                body = json.dumps({"status": "not ready", "problem": problem}).encode()
                self._send(503, body, "application/json")
        else:
            self._send(404, b'{"error": "not found"}', "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes come every few seconds; they are not worth a log line."""


def start_health_server(port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer | None:
    """Serve the endpoint in a daemon thread; log and go on without it if the port is taken."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    handler = type("Handler", (_Handler,), {"registry": registry})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        logger.error("worker health endpoint not started on port %s: %s", port, exc,
                     extra={"action": "worker.health_failed"})
        return None
    threading.Thread(target=server.serve_forever, daemon=True, name="health").start()
    logger.info("worker health and metrics endpoint on port %s", server.server_port,
                extra={"action": "worker.health_started"})
    return server
