"""The librdkafka configuration of every Kafka client streamgen makes, built here and nowhere else.

Every client starts from two settings: ``kafka.bootstrap_servers`` and ``kafka.client_config``
(security.protocol, sasl.*, ssl.*, tuning). ``kafka.client_config_file`` is already folded into
``client_config`` when the settings are loaded (:func:`streamgen.configuration.load_settings`
reads the file once, at start-up, so a password can live in a mounted secret); the values are
passed on here and never printed (DESIGN 9).

A role then adds its own keys on either side of the user's ``client_config``::

    bootstrap.servers  <  defaults  <  kafka.client_config  <  required  (< logger)

- ``defaults``: what the client wants unless the user says otherwise (a client id, tuning);
- ``required``: what the client's guarantees need, which no setting may change (idempotence
  for a producer whose retries must not duplicate, manual commits for a reader that must not
  move the group's offsets, a consumer's group);
- ``route_logs``: librdkafka's log lines go through Python logging
  (:func:`streamgen.log_routing.librdkafka_logger`), so ``--log-level`` and the known-noise
  filters apply. Only for clients that ``poll()`` or ``flush()``, which is when the lines
  arrive; an admin client never does, so it never routes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamgen.log_routing import librdkafka_logger
from streamgen.settings import KafkaSettings

__all__ = ["admin_config", "consumer_config", "producer_config"]

_NONE: Mapping[str, Any] = {}


def producer_config(
    kafka: KafkaSettings,
    *,
    defaults: Mapping[str, Any] = _NONE,
    required: Mapping[str, Any] = _NONE,
    route_logs: bool = False,
) -> dict[str, Any]:
    """A ``Producer``'s configuration: the role's ``defaults``, the user's, then ``required``."""
    return _layered(kafka, defaults, required, route_logs)


def consumer_config(
    kafka: KafkaSettings,
    group_id: str,
    *,
    defaults: Mapping[str, Any] = _NONE,
    required: Mapping[str, Any] = _NONE,
    route_logs: bool = False,
) -> dict[str, Any]:
    """A ``Consumer``'s configuration, in consumer group ``group_id`` whatever
    ``client_config`` says: the group is where offsets are committed and what ACLs and
    ``streamgen lag`` name, so it is streamgen's choice (``worker.group_id``), never a login's."""
    return _layered(kafka, defaults, {**required, "group.id": group_id}, route_logs)


def admin_config(kafka: KafkaSettings) -> dict[str, Any]:
    """An ``AdminClient``'s configuration: the address and the user's login, nothing else."""
    return _layered(kafka, _NONE, _NONE, route_logs=False)


def _layered(
    kafka: KafkaSettings,
    defaults: Mapping[str, Any],
    required: Mapping[str, Any],
    route_logs: bool,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        **defaults,
        **kafka.client_config,
        **required,
    }
    if route_logs:
        config["logger"] = librdkafka_logger()
    return config
