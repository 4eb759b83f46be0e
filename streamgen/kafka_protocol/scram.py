"""The client side of SCRAM (RFC 5802, with SHA-256 or SHA-512 as RFC 7677 and Kafka use it),
for the requests ``streamgen.kafka_protocol.link`` sends itself. Pure: messages in, messages out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["ScramClient", "ScramError"]


class ScramError(ValueError):
    """The server's SCRAM message is malformed or does not prove it knows the password."""


class ScramClient:
    def __init__(self, mechanism: str, username: str, password: str, nonce: str = "") -> None:
        names = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
        if mechanism not in names:
            raise ScramError(f"not a SCRAM mechanism: {mechanism!r}")
        self._hash = names[mechanism]
        self._password = password.encode()
        user = username.replace("=", "=3D").replace(",", "=2C")
        self._nonce = nonce or secrets.token_urlsafe(24)
        self._first_bare = f"n={user},r={self._nonce}"
        self._server_signature = b""

    def first(self) -> bytes:
        return f"n,,{self._first_bare}".encode()

    def final(self, server_first: bytes) -> bytes:
        """The client's proof, for the server's first message."""
        text = server_first.decode()
        fields = _fields(text)
        nonce, salt, rounds = fields.get("r", ""), fields.get("s"), fields.get("i", "")
        if not nonce.startswith(self._nonce) or salt is None or not rounds.isdigit():
            raise ScramError("the server's first message is not a SCRAM challenge for this login")
        salted = hashlib.pbkdf2_hmac(
            self._hash, self._password, base64.b64decode(salt), int(rounds)
        )
        client_key = self._hmac(salted, b"Client Key")
        stored_key = hashlib.new(self._hash, client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        message = f"{self._first_bare},{text},{without_proof}".encode()
        signature = self._hmac(stored_key, message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = self._hmac(self._hmac(salted, b"Server Key"), message)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> None:
        """ScramError unless the server proved it holds this password's keys."""
        fields = _fields(server_final.decode())
        if "e" in fields:
            raise ScramError(f"the server refused the login: {fields['e']}")
        given = base64.b64decode(fields.get("v", ""))
        if not self._server_signature or not hmac.compare_digest(given, self._server_signature):
            raise ScramError("the server's signature does not match: not the server it claims")

    def _hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self._hash).digest()


def _fields(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(",") if "=" in part)
