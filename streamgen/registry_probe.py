"""Is ``kafka.schema_registry_url`` a Confluent-compatible schema registry? Asked at start-up.

The registry client learns nothing until the first registration, which the worker makes after
its model has loaded: a wrong URL then cost minutes of warm-up and ended in a traceback.
``GET {url}/subjects`` answers the question in one round trip: a registry returns a JSON list
of subject names, a wrong path 404, another server something that is not that list.

Nothing answering is retried until the timeout, like the broker and the store (a registry may
be starting); an answer that proves the URL wrong stops at once.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

from streamgen.errors import ConfigError

__all__ = ["check_registry_url", "describe_subjects_reply"]

log = logging.getLogger(__name__)

SETTING = "kafka.schema_registry_url"
# Not a port: the local stack's registry port is its own (`dev up --registry-port`, state.json).
_LOCAL_HINT = "the local stack's is http://127.0.0.1:PORT/apis/ccompat/v6 (`streamgen dev env`)"
_RETRY_S = 0.5
_HTTP_SERVER_ERROR = 500


def describe_subjects_reply(status: int, content_type: str, body: bytes) -> str | None:
    """None when a ``GET /subjects`` answer is a registry's; else what is wrong with it."""
    kind = content_type.split(";", maxsplit=1)[0].strip() or "no content type"
    json_reply = kind == "application/json" or kind.endswith("+json")
    if status == http.HTTPStatus.NOT_FOUND:
        return f"GET /subjects answered 404: no registry API at this path; {_LOCAL_HINT}"
    if status in (http.HTTPStatus.UNAUTHORIZED, http.HTTPStatus.FORBIDDEN) and json_reply:
        return f"GET /subjects answered {status}: the registry refuses anonymous access"
    if status != http.HTTPStatus.OK:
        return (
            f"GET /subjects answered HTTP {status} ({kind}), not a registry's list of subjects: "
            f"not a registry; {_LOCAL_HINT}"
        )
    try:
        subjects = json.loads(body)
    except ValueError:
        subjects = None
    if not isinstance(subjects, list) or not all(isinstance(s, str) for s in subjects):
        return (
            f"GET /subjects answered {kind}, not a JSON list of subjects: not a registry "
            f"(Confluent-compatible API); {_LOCAL_HINT}"
        )
    return None


def check_registry_url(
    url: str,
    timeout: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Return when ``url`` answers as a registry within ``timeout`` s; else ConfigError."""
    if not url or url.startswith("mock://"):  # none, or the client's in-memory registry
        return
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError(SETTING, f"{url!r}: expected http(s)://HOST:PORT[/PATH]")
    subjects = url.rstrip("/") + "/subjects"
    deadline = clock() + timeout
    while True:
        try:
            status, content_type, body = _get(subjects, max(deadline - clock(), 0.1))
        except (http.client.HTTPException, ConnectionResetError) as exc:
            # It accepted the connection but did not answer in HTTP (a Kafka port, say).
            raise ConfigError(
                SETTING, f"{url} does not answer in HTTP ({type(exc).__name__}); {_LOCAL_HINT}"
            ) from None
        except OSError as exc:
            reason = getattr(exc, "reason", exc)
            if clock() >= deadline:
                raise ConfigError(
                    SETTING,
                    f"no schema registry answered at {url} within {timeout:.0f}s "
                    f"(kafka.connect_timeout_s); last error: {reason}. Check the URL and that "
                    "the registry is running.",
                ) from None
            log.warning("schema registry at %s not answering (%s); retrying", url, reason)
            sleep(min(_RETRY_S, max(deadline - clock(), 0.0)))
            continue
        wrong = describe_subjects_reply(status, content_type, body)
        if wrong is None:
            return
        if status >= _HTTP_SERVER_ERROR and clock() < deadline:
            sleep(min(_RETRY_S, max(deadline - clock(), 0.0)))  # a registry still starting
            continue
        raise ConfigError(SETTING, f"{url}: {wrong}")


def _get(url: str, timeout: float) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.headers.get("Content-Type", ""), reply.read(1 << 20)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read(1 << 20)
