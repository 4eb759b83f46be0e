"""A command's first look at the broker: topic metadata, with a refused login said at once.

librdkafka treats a login the broker refused (a wrong SASL password, a failed TLS handshake)
like a broker that is down: it retries, and ``list_topics`` blocks for its whole timeout before
it says only "Broker transport failure". The reason reaches the client's ``error_cb`` within
about a second. So :func:`list_topics_watching_login` asks in slices and reads those errors
between them: a refused login is a :class:`ConfigError` naming ``kafka.client_config`` as soon
as librdkafka reports it, while an address where nobody answers still waits the whole timeout
(nothing tells it from a broker that is still starting). An address that answers in another
protocol (an HTTP server, a TLS listener asked in the clear) is found before the first request,
by :func:`streamgen.listener_probe.check_listeners`.

:class:`MetadataProbe` is that wait on an admin client of its own, the one place where the
worker's start-up checks, ``streamgen submit``, ``lag``, ``replay`` and ``topics create`` ask.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

# confluent_kafka.admin re-exports it without __all__, which mypy --strict cannot see.
from confluent_kafka.admin import AdminClient, ClusterMetadata  # type: ignore[attr-defined]

from streamgen.errors import ConfigError
from streamgen.listener_probe import check_listeners

__all__ = [
    "AUTH_CODES",
    "FIRST_SLICE_S",
    "MetadataProbe",
    "coordinator_not_ready",
    "list_topics_watching_login",
]

# librdkafka error codes that mean "the broker refused who we are", not "nobody answered".
AUTH_CODES = frozenset(
    {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._SSL}
)
# The group coordinator answers these while it is still loading or moving (a broker just
# started, a coordinator failing over): asking again shortly is the documented remedy.
_COORDINATOR_NOT_READY = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)


def coordinator_not_ready(exc: KafkaException) -> bool:
    """Whether ``exc`` says only that the group coordinator cannot answer yet."""
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.code() in _COORDINATOR_NOT_READY


# The first slice of the wait; each next one is twice as long. Short, so a refused login is
# noticed within a second; doubling, because each slice sends the request again: fixed short
# slices would never outlast a broker slow to answer (a long round trip, a cold TLS handshake).
FIRST_SLICE_S = 0.25
# librdkafka's timeouts are whole milliseconds: a slice never asks for less than one.
_MIN_SLICE_S = 0.001
# A long-lived probe (`streamgen lag --watch`) keeps only the latest errors.
_KEPT_ERRORS = 32


class MetadataClient(Protocol):
    """What the sliced wait needs of a client: confluent-kafka's ``AdminClient``, or a fake."""

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any: ...

    def poll(self, timeout: float = -1) -> int: ...


def list_topics_watching_login(
    client: MetadataClient,
    errors: Collection[KafkaError],
    *,
    topic: str | None,
    timeout: float,
    servers: str,
    clock: Callable[[], float] = time.monotonic,
) -> Any:
    """``client.list_topics(topic)`` within ``timeout`` seconds, asked in doubling slices.

    ``errors`` is what the client's ``error_cb`` collected; between slices ``poll(0)`` serves
    that callback. An authentication failure there (or in a slice's own error) raises the
    ConfigError at once. At the timeout a KafkaException carries the most telling error seen:
    "Connection refused" says why, "all brokers down" and "transport failure" do not.
    """
    deadline = clock() + timeout
    slice_s = FIRST_SLICE_S
    while True:
        asked = max(min(slice_s, deadline - clock()), _MIN_SLICE_S)
        try:
            return client.list_topics(topic, timeout=asked)
        except KafkaException as exc:
            client.poll(0)
            seen = [e for e in (*exc.args[:1], *errors) if isinstance(e, KafkaError)]
            refused = next((e for e in seen if e.code() in AUTH_CODES), None)
            if refused is not None:
                raise _login_refused(servers, refused) from None
            if clock() >= deadline:
                telling = _most_telling(seen)
                if telling is None:
                    raise
                raise KafkaException(telling) from None
        slice_s *= 2


def _login_refused(servers: str, refused: KafkaError) -> ConfigError:
    if refused.code() == KafkaError._SSL:
        # A TLS failure is not about the password: most often the CA does not match.
        return ConfigError(
            "kafka.client_config",
            f"the TLS handshake with the broker at {servers} failed: {refused.str()}. Check "
            "ssl.ca.location (the CA that signed the broker's certificate), the broker's host "
            "name against its certificate, and security.protocol.",
        )
    return ConfigError(
        "kafka.client_config",
        f"the broker at {servers} refused our credentials: {refused.str()}. Check "
        "security.protocol, sasl.mechanism, sasl.username and sasl.password (values are never "
        "printed).",
    )


def _most_telling(seen: list[KafkaError]) -> KafkaError | None:
    """The last error that says why ("Connection refused"), not that all brokers are down."""
    return next((e for e in reversed(seen) if e.code() != KafkaError._ALL_BROKERS_DOWN), None)


class MetadataProbe:
    """Topic metadata through an admin client of its own, whose errors it keeps.

    librdkafka's log is off for this client: each failed connection attempt would be printed
    again and again, and the errors it raises say the reason once.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._servers = str(config.get("bootstrap.servers", ""))
        self._config = dict(config)
        self._listeners_checked = False
        self._errors: deque[KafkaError] = deque(maxlen=_KEPT_ERRORS)
        config = {**config, "error_cb": self._errors.append, "log_level": 0}
        try:
            self._admin = AdminClient(config)
        except KafkaException as exc:
            raise ConfigError("kafka.client_config", f"librdkafka refused it: {exc}") from None

    def list_topics(self, topic: str | None, timeout: float) -> ClusterMetadata:
        """Metadata of ``topic`` (None: every topic) within ``timeout`` seconds.

        Raises ConfigError (``kafka.client_config``) as soon as the broker refuses the login;
        KafkaException, with the reason, when nobody answered within the timeout.
        """
        if not self._listeners_checked:
            # Once per probe: a wrong protocol is said at once, not at the end of the timeout.
            check_listeners(self._config, min(timeout, 2.0))
            self._listeners_checked = True
        found: ClusterMetadata = list_topics_watching_login(
            self._admin, self._errors, topic=topic, timeout=timeout, servers=self._servers
        )
        return found
