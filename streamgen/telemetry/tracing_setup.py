"""Install an OpenTelemetry tracer provider when, and only when, the ``OTEL_*`` variables ask.

Tracing is off unless one of these says otherwise (the standard SDK variables, read as the
SDK documents them):

- ``OTEL_SDK_DISABLED=true``: off, whatever else is set.
- ``OTEL_TRACES_EXPORTER``: comma-separated ``console`` | ``otlp`` | ``none``.
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` without
  ``OTEL_TRACES_EXPORTER``: ``otlp``.

``otlp`` needs ``opentelemetry-exporter-otlp-proto-grpc`` (or ``-proto-http`` when
``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` is ``http/protobuf``); without it a log line says
what to install and that exporter is skipped. The exporters read their endpoint, headers and
timeouts from the same variables; ``OTEL_SERVICE_NAME`` and ``OTEL_TRACES_SAMPLER`` work too.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from streamgen.errors import ConfigError

__all__ = ["configure_tracing", "requested_exporters", "tracing_from_env"]

log = logging.getLogger(__name__)

KNOWN_EXPORTERS = ("console", "otlp", "none")
OTLP_MODULES = {
    "grpc": (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "opentelemetry-exporter-otlp-proto-grpc",
    ),
    "http/protobuf": (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry-exporter-otlp-proto-http",
    ),
}


def requested_exporters(env: Mapping[str, str]) -> list[str]:
    """The exporters the environment asks for; empty means tracing stays off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    raw = env.get("OTEL_TRACES_EXPORTER", "").strip()
    if not raw:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return ["otlp"] if endpoint else []
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in KNOWN_EXPORTERS]
    if unknown:
        raise ConfigError(
            "OTEL_TRACES_EXPORTER", f"unknown exporter(s) {unknown}; known: {list(KNOWN_EXPORTERS)}"
        )
    return [n for n in names if n != "none"]


def _otlp_exporter(env: Mapping[str, str]) -> SpanExporter | None:
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip()
    if protocol not in OTLP_MODULES:
        raise ConfigError(
            "OTEL_EXPORTER_OTLP_PROTOCOL", f"{protocol!r} not in {sorted(OTLP_MODULES)}"
        )
    module_name, package = OTLP_MODULES[protocol]
    try:
        module: Any = importlib.import_module(module_name)
    except ImportError:
        log.warning(
            "OTEL_TRACES_EXPORTER asks for otlp (%s) but %s is not installed: "
            "no spans are exported there (pip install %s)",
            protocol,
            package,
            package,
        )
        return None
    exporter: SpanExporter = module.OTLPSpanExporter()
    return exporter


def configure_tracing(
    service_name: str = "streamgen",
    env: Mapping[str, str] | None = None,
    *,
    install_global: bool = True,
) -> TracerProvider | None:
    """Build the SDK tracer provider the environment asks for, install it as OpenTelemetry's
    global provider (unless ``install_global`` is False) and return it; None means off.

    Call ``provider.shutdown()`` at exit so batched spans are flushed.
    """
    env = os.environ if env is None else env
    names = requested_exporters(env)
    if not names:
        return None
    exporters: list[SpanExporter] = []
    for name in names:
        exporter = ConsoleSpanExporter() if name == "console" else _otlp_exporter(env)
        if exporter is not None:
            exporters.append(exporter)
    if not exporters:
        return None
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or service_name})
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    if install_global:
        trace.set_tracer_provider(provider)
    log.info("tracing on: exporting spans to %s", ", ".join(names))
    return provider


@contextlib.contextmanager
def tracing_from_env(service_name: str) -> Iterator[TracerProvider | None]:
    """:func:`configure_tracing` for a process's lifetime: spans still batched are exported
    when the block ends, whichever way it ends."""
    provider = configure_tracing(service_name)
    try:
        yield provider
    finally:
        if provider is not None:
            provider.shutdown()
