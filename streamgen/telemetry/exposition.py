"""How the worker's metrics leave the process: ``/metrics`` and ``/ready`` over HTTP.

:class:`~streamgen.telemetry.metrics.Metrics` declares the series; this module serves a
registry of them, with the readiness probe beside it (the worker lifecycle's answer,
``streamgen.worker.lifecycle.Lifecycle.readiness``), and lists the sample names a registry
can expose (the dashboards are checked against them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

__all__ = ["series_names", "serve_http"]


def serve_http(
    registry: CollectorRegistry,
    port: int,
    addr: str = "0.0.0.0",
    *,
    ready: Callable[[], tuple[bool, str]] | None = None,
) -> Any:
    """Serve ``/metrics`` for ``registry``, and ``/ready`` (200 or 503, from ``ready``)
    when given, on a daemon thread; returns the HTTP server (``server.shutdown()`` stops
    it). Port 0 picks a free port: ``server.server_port``."""
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes] | list[bytes]:
        if ready is not None and environ.get("PATH_INFO") == "/ready":
            ok, why = ready()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [f"{why}\n".encode()]
        body: Iterator[bytes] = metrics_app(environ, start_response)
        return body

    server = make_server(addr, port, app, _ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics-http").start()
    return server


def series_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name ``registry`` can expose (``_total``, ``_bucket`` … included)."""
    names: set[str] = set()
    for family in registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{s}" for s in ("_bucket", "_sum", "_count"))
        elif family.type == "info":
            names.add(f"{family.name}_info")
    return names


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """One thread per scrape or probe: a slow scraper never delays the readiness probe."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape and probe (every few seconds, for ever)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass
