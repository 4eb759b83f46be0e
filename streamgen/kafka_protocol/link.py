"""One blocking connection to one Kafka broker, logged in as ``kafka.client_config`` says, for
the requests librdkafka does not offer (``streamgen.kafka_protocol.share_offsets``).

It reads the same librdkafka properties every other client of streamgen gets:
``security.protocol`` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), ``sasl.mechanism(s)``
(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), ``sasl.username``/``sasl.password``, and for TLS
``ssl.ca.location``, ``ssl.certificate.location``, ``ssl.key.location``, ``ssl.key.password``,
``enable.ssl.certificate.verification`` and ``ssl.endpoint.identification.algorithm``. Any
other mechanism, or a TLS property it does not know, is a ConfigError naming it, never a
connection made with weaker settings than the user's.
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Mapping
from typing import Any

from streamgen.errors import ConfigError
from streamgen.kafka_protocol.scram import ScramClient, ScramError
from streamgen.kafka_protocol.wire import Reader, Writer, request_frame

__all__ = ["KafkaLink", "LinkError"]

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
SETTING = "kafka.client_config"
_TLS_KEYS = {
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "enable.ssl.certificate.verification",
    "ssl.endpoint.identification.algorithm",
}
_TLS_IGNORED = {"ssl.ca.certificate.stores"}  # Windows only in librdkafka


class LinkError(ConnectionError):
    """The broker could not be reached, or broke off, or answered what cannot be parsed."""


class KafkaLink:
    def __init__(
        self, host: str, port: int, client_config: Mapping[str, Any], timeout_s: float
    ) -> None:
        config = {k: str(v) for k, v in client_config.items()}
        protocol = config.get("security.protocol", "plaintext").lower()
        if protocol not in {"plaintext", "ssl", "sasl_plaintext", "sasl_ssl"}:
            raise ConfigError(SETTING, f"security.protocol {protocol!r} is not one Kafka knows")
        self._correlation = 0
        self.versions: dict[int, tuple[int, int]] = {}
        try:
            raw = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as exc:
            raise LinkError(f"cannot connect to {host}:{port}: {exc}") from exc
        try:
            self._sock = _tls(raw, host, config) if protocol.endswith("ssl") else raw
            self.versions = self._api_versions()
            if protocol.startswith("sasl"):
                self._login(config)
        except BaseException:
            raw.close()
            raise

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> KafkaLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, api_key: int, version: int, body: bytes, *, flexible: bool) -> Reader:
        """Send one request, return a reader over its response's body (past the header)."""
        self._correlation += 1
        try:
            self._sock.sendall(
                request_frame(api_key, version, self._correlation, body, flexible=flexible)
            )
            (size,) = struct.unpack(">i", self._read(4))
            reader = Reader(self._read(size))
        except (OSError, ssl.SSLError) as exc:
            raise LinkError(f"the broker broke off: {exc}") from exc
        if reader.int32() != self._correlation:
            raise LinkError("a response to another request")
        if flexible and api_key != API_VERSIONS:  # ApiVersions answers with header v0 always
            reader.tags()
        return reader

    def supports(self, api_key: int, version: int) -> bool:
        low, high = self.versions.get(api_key, (0, -1))
        return low <= version <= high

    def _read(self, count: int) -> bytes:
        chunks, left = [], count
        while left:
            chunk = self._sock.recv(min(left, 1 << 20))
            if not chunk:
                raise LinkError("the broker closed the connection")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _api_versions(self) -> dict[int, tuple[int, int]]:
        reader = self.call(API_VERSIONS, 0, b"", flexible=False)
        error = reader.int16()
        if error:
            raise LinkError(f"ApiVersions refused, error code {error}")
        entries = reader.array(lambda r: (r.int16(), r.int16(), r.int16()))
        return {key: (low, high) for key, low, high in entries}

    def _login(self, config: Mapping[str, str]) -> None:
        mechanism = config.get("sasl.mechanism", config.get("sasl.mechanisms", "GSSAPI")).upper()
        user, password = config.get("sasl.username"), config.get("sasl.password")
        if mechanism not in {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}:
            raise ConfigError(
                SETTING,
                f"sasl.mechanism {mechanism} is not one streamgen's share-group reader speaks "
                "(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)",
            )
        if user is None or password is None:
            raise ConfigError(
                SETTING, f"sasl.mechanism {mechanism} needs sasl.username and sasl.password"
            )
        reader = self.call(SASL_HANDSHAKE, 1, Writer().string(mechanism).build(), flexible=False)
        error, offered = reader.int16(), reader.array(Reader.string)
        if error:
            raise ConfigError(
                SETTING,
                f"the broker does not take sasl.mechanism {mechanism} "
                f"(it offers {', '.join(filter(None, offered))})",
            )
        if mechanism == "PLAIN":
            self._authenticate(f"\0{user}\0{password}".encode())
            return
        scram = ScramClient(mechanism, user, password)
        try:
            server_first = self._authenticate(scram.first())
            scram.verify(self._authenticate(scram.final(server_first)))
        except ScramError as exc:
            raise ConfigError(SETTING, f"the broker refused the login: {exc}") from exc

    def _authenticate(self, payload: bytes) -> bytes:
        reader = self.call(
            SASL_AUTHENTICATE, 1, Writer().raw_bytes(payload).build(), flexible=False
        )
        error, message, answer = reader.int16(), reader.string(), reader.raw_bytes()
        reader.int64()  # the session's lifetime: this link is short
        if error:
            raise ConfigError(SETTING, f"the broker refused the login: {message or error}")
        return answer


def _tls(raw: socket.socket, host: str, config: Mapping[str, str]) -> ssl.SSLSocket:
    unknown = sorted(
        k for k in config if k.startswith("ssl.") and k not in _TLS_KEYS | _TLS_IGNORED
    )
    if unknown:
        raise ConfigError(
            SETTING,
            f"{', '.join(unknown)}: not read by streamgen's share-group reader, which takes "
            f"{', '.join(sorted(_TLS_KEYS))}",
        )
    context = ssl.create_default_context(cafile=config.get("ssl.ca.location"))
    if config.get("ssl.endpoint.identification.algorithm", "https").lower() == "none":
        context.check_hostname = False
    if config.get("enable.ssl.certificate.verification", "true").lower() == "false":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if "ssl.certificate.location" in config:
        context.load_cert_chain(
            config["ssl.certificate.location"],
            config.get("ssl.key.location"),
            config.get("ssl.key.password"),
        )
    try:
        return context.wrap_socket(raw, server_hostname=host)
    except ssl.SSLError as exc:
        raise ConfigError(SETTING, f"TLS with {host} failed: {exc.reason or exc}") from exc
