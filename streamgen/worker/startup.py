"""What a worker checks before it loads its model and joins the group: broker, topics, schema
registry, object store, model paths (DESIGN invariant 10: fail fast at start, keep going after).

Each check is bounded in time and turns what it finds into a :class:`ConfigError` naming the
setting to fix, with what to do, so an operator reads one paragraph instead of a traceback or a
log that repeats "Connection refused" for ever. The same faults after a good start are
transient and retried by the worker as usual.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from streamgen.contracts.codec import AvroCodec, result_codec
from streamgen.contracts.result import GenerationResult
from streamgen.errors import ConfigError, SchemaRegistryUnavailable, StoreUnavailable
from streamgen.kafka_metadata import MetadataProbe
from streamgen.lanes import topic_ranks
from streamgen.registry_probe import check_registry_url
from streamgen.settings import Settings, split_preset
from streamgen.store.base import ObjectStore
from streamgen.worker.backoff import Backoff

__all__ = ["check_broker", "check_model_sources", "check_registry", "check_store"]

log = logging.getLogger(__name__)

_TOPIC_SETTINGS = ("requests", "results", "dead_letter")


def check_broker(settings: Settings, client_config: Mapping[str, Any]) -> None:
    """The broker answers within ``kafka.connect_timeout_s``, accepts our credentials, and has
    the three topics, every priority lane's topic and, unless ``topics.cancels`` is empty
    (cancellation off), the cancels topic, and with ``worker.progress`` on the progress
    topic; else ConfigError naming the setting. A refused
    login is said as soon as librdkafka reports it, not at the end of the timeout
    (:mod:`streamgen.kafka_metadata`)."""
    servers = settings.kafka.bootstrap_servers
    timeout = settings.kafka.connect_timeout_s
    probe = MetadataProbe(client_config)
    deadline = time.monotonic() + timeout
    names = (*_TOPIC_SETTINGS, "cancels") if settings.topics.cancels else _TOPIC_SETTINGS
    names = (*names, "progress") if settings.worker.progress else names
    wanted = [(f"topics.{name}", getattr(settings.topics, name)) for name in names]
    # Every priority lane's topic but the default lane's (topics.requests, above).
    lanes = [t for t in topic_ranks(settings.topics) if t != settings.topics.requests]
    for setting, topic in wanted + [("topics.lanes", topic) for topic in lanes]:
        try:
            metadata = probe.list_topics(topic, max(deadline - time.monotonic(), 0.1))
        except KafkaException as exc:
            raise ConfigError(
                "kafka.bootstrap_servers",
                f"no broker answered at {servers} within {timeout:.0f}s "
                f"(kafka.connect_timeout_s); last error: {exc.args[0].str()}. Check the address "
                "and that the broker is running (`streamgen dev status` for the local stack).",
            ) from None
        found = metadata.topics.get(topic)
        error = found.error if found is not None else None
        if found is None or (
            error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        ):
            raise ConfigError(
                setting,
                f"topic {topic!r} does not exist on {servers}. Fix the name, or create the "
                "topics with `streamgen topics create` (same settings).",
            )
        if error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            raise ConfigError(
                setting,
                f"the broker at {servers} does not allow this principal to describe topic "
                f"{topic!r} (a broker with ACLs says so of a topic that does not exist, too). "
                "Check the name, grant the worker's user the ACLs in README: Security, or "
                "check the credentials in kafka.client_config.",
            )
        if error is not None:
            raise ConfigError(setting, f"topic {topic!r} on {servers}: {error.str()}")


def check_store(
    store: ObjectStore,
    *,
    create: bool,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """The object store answers within ``timeout`` seconds and has its bucket (created only
    when ``create``); else ConfigError naming the setting. Refused credentials and a missing
    bucket are ConfigErrors from the store itself, not retried."""
    backoff = Backoff(0.2, 2.0)
    deadline = clock() + timeout
    attempt = 0
    while True:
        try:
            store.ensure_ready(create=create)
            return
        except StoreUnavailable as exc:
            left = deadline - clock()
            if left <= 0:
                raise ConfigError(
                    "store.endpoint",
                    f"{exc} (gave up after {timeout:.0f}s, store.connect_timeout_s). Check "
                    "store.endpoint and that the object store is running.",
                ) from None
            delay = min(backoff.delay(attempt), left)
            log.warning("object store not ready (%s); retry in %.1fs", exc, delay)
            attempt += 1
            sleep(delay)


def check_registry(settings: Settings) -> AvroCodec[GenerationResult]:
    """The result codec, its schema registered when ``kafka.schema_registry_url`` is set: asked
    now, so a wrong URL stops the worker before its model loads (exit 4), not at its first
    result. The worker publishes with this codec, so a start registers the schema once."""
    kafka = settings.kafka
    results = result_codec(kafka, settings.topics.results)
    if not kafka.schema_registry_url:
        return results
    check_registry_url(kafka.schema_registry_url, kafka.connect_timeout_s)
    try:
        results.prepare()
    except SchemaRegistryUnavailable as exc:
        raise ConfigError("kafka.schema_registry_url", str(exc)) from None
    return results


def check_model_sources(models: Mapping[str, str]) -> None:
    """Every local model path exists and holds a pipeline (``model_index.json``), checked for
    all models before the first loads: a typo in the second model must not cost the first
    one's load. A name that is no path is a hub id, which only loading can check."""
    for name, value in models.items():
        source, _ = split_preset(value)
        path = Path(source).expanduser()
        if path.is_dir():
            if not (path / "model_index.json").is_file():
                raise ConfigError(
                    f"engine.models[{name}]",
                    f"{source!r} has no model_index.json: not a diffusers pipeline directory "
                    "(`streamgen model init --arch tiny --out DIR` writes one)",
                )
        elif path.exists() or source.startswith(("/", ".", "~")):
            raise ConfigError(
                f"engine.models[{name}]",
                f"directory {source!r} does not exist. Point --model at a pipeline directory "
                "(`streamgen model init --arch tiny --out DIR` writes one) or at a hub id.",
            )
