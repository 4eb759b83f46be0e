"""What answers at a bootstrap address: a Kafka broker, an HTTP server, or a TLS listener.

librdkafka meets a port that speaks another protocol like a broker that is down: it retries
until the timeout and says "Broker transport failure". Two cheap questions, asked once before
the first metadata request, tell the common mistakes apart within a round trip:

- a Kafka ``ApiVersions`` request (v0, which every broker answers before any login) in the
  clear: a broker answers with our correlation id, an HTTP server with ``HTTP/1.x 400``, a TLS
  listener with a TLS alert record (``0x15 0x03``) or by closing the connection;
- where that was not conclusive, a TLS handshake that verifies nothing: it completes only with
  a TLS listener.

Only an answer that proves a mistake raises; silence, a refused connection or anything
unclear is left to librdkafka, which waits its timeout as before (a broker may be starting).
"""

from __future__ import annotations

import enum
import socket
import ssl
import struct
from collections.abc import Mapping
from typing import Any

from streamgen.errors import ConfigError

__all__ = ["Listener", "check_listeners", "classify_reply", "identify_listener"]

# One round trip on a healthy network; a slow answer is not proof of anything, so it only
# costs this once before librdkafka takes over.
_PROBE_TIMEOUT_S = 2.0
_API_VERSIONS = 18
_CORRELATION_ID = 0x5354_4D47  # "STMG": any id; a broker echoes it
# It ends in an empty line: a line-based server (HTTP) then holds a whole (malformed) request
# and answers it at once, where it would wait for the rest; a broker reads any client id.
_CLIENT_ID = b"streamgen-probe\r\n\r\n"
_TLS_PROTOCOLS = {"ssl", "sasl_ssl"}


class Listener(enum.Enum):
    KAFKA = "a Kafka broker"
    HTTP = "an HTTP server"
    TLS = "a TLS listener"
    UNKNOWN = "nothing conclusive"


def _api_versions_request() -> bytes:
    header = struct.pack(">hhih", _API_VERSIONS, 0, _CORRELATION_ID, len(_CLIENT_ID)) + _CLIENT_ID
    return struct.pack(">i", len(header)) + header


def classify_reply(reply: bytes) -> Listener:
    """What the first bytes answered to a plaintext ApiVersions request say about the peer."""
    if reply.startswith(b"HTTP/"):
        return Listener.HTTP
    # A TLS record: content type alert (21) or handshake (22), then major version 3.
    if len(reply) >= 2 and reply[0] in (0x15, 0x16) and reply[1] == 0x03:
        return Listener.TLS
    if len(reply) >= 8 and struct.unpack(">i", reply[4:8])[0] == _CORRELATION_ID:
        return Listener.KAFKA
    return Listener.UNKNOWN


def identify_listener(host: str, port: int, timeout: float = _PROBE_TIMEOUT_S) -> Listener:
    """Ask ``host:port`` in the clear, then (if that was not conclusive) over TLS."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_api_versions_request())
            reply = _read_some(sock, 8)
    except OSError:
        return Listener.UNKNOWN  # refused, unreachable, reset: librdkafka says it better
    found = classify_reply(reply)
    if found is not Listener.UNKNOWN or reply:
        return found
    # Closed without a word: a TLS listener may do that with a request it cannot read.
    return Listener.TLS if _tls_handshake_completes(host, port, timeout) else Listener.UNKNOWN


def _read_some(sock: socket.socket, size: int) -> bytes:
    reply = b""
    try:
        while len(reply) < size:
            chunk = sock.recv(size - len(reply))
            if not chunk:
                break
            reply += chunk
    except OSError:
        pass  # what came before a reset or a timeout still tells
    return reply


def _tls_handshake_completes(host: str, port: int, timeout: float) -> bool:
    # Identification only, nothing is sent after it: librdkafka verifies the certificate.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


def check_listeners(config: Mapping[str, Any], timeout: float = _PROBE_TIMEOUT_S) -> None:
    """Raise ConfigError when an address in ``bootstrap.servers`` answers in a protocol the
    client configuration does not speak; return otherwise (unclear answers included)."""
    servers = str(config.get("bootstrap.servers", ""))
    protocol = str(config.get("security.protocol", "plaintext")).lower()
    tls = protocol in _TLS_PROTOCOLS
    for address in (a.strip() for a in servers.split(",") if a.strip()):
        host, _, port_text = address.rpartition(":")
        if not host or not port_text.isdigit():
            continue  # librdkafka reports a malformed address itself
        host = host.removeprefix("[").removesuffix("]")  # [::1]:9092
        found = identify_listener(host, int(port_text), timeout)
        if found is Listener.HTTP:
            raise ConfigError(
                "kafka.bootstrap_servers",
                f"{address} is an HTTP server, not a Kafka broker (it answered a Kafka request "
                "with an HTTP error). Check the host and port: is it the registry's or the "
                "object store's?",
            )
        if found is Listener.TLS and not tls:
            raise ConfigError(
                "kafka.client_config",
                f"{address} is a TLS listener, but security.protocol is {protocol.upper()}. "
                "Set security.protocol=SSL (or SASL_SSL with a login) and ssl.ca.location to "
                "the CA that signed the broker's certificate, or use the broker's plaintext "
                "port.",
            )
        if found is Listener.KAFKA and tls:
            raise ConfigError(
                "kafka.client_config",
                f"{address} is a Kafka listener without TLS, but security.protocol is "
                f"{protocol.upper()}. Use the broker's TLS port, or "
                f"security.protocol={'SASL_PLAINTEXT' if 'sasl' in protocol else 'PLAINTEXT'}.",
            )
