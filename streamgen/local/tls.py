"""The secure local broker's TLS: a CA of its own and the broker's certificate signed by it.

::

    STATE_DIR/kafka/tls/
      ca.pem              the CA certificate: what clients trust (ssl.ca.location)
      ca.key.pem          the CA's private key (0600): kept only so a lost broker key can be
                          re-issued under the same CA without clients changing anything
      broker.p12          the broker's key and certificate chain, PKCS#12 (0600), for
                          ssl.keystore.location; its password is in state.json

The broker certificate names ``127.0.0.1`` and ``localhost`` (subjectAltName), so librdkafka's
default host-name verification (``ssl.endpoint.identification.algorithm=https``) holds. Files
are written once per state dir and kept: a client given ``ca.pem`` keeps working across
``dev down``/``dev up``. For development only, like the passwords.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["BrokerTls", "new_ca"]

_VALID_DAYS = 825  # the longest a browser-era client accepts for a server certificate


@dataclass(frozen=True)
class BrokerTls:
    """Where the CA and the broker's keystore live, and the keystore's password."""

    directory: Path
    keystore_password: str

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.directory / "broker.p12"

    def ensure(self) -> None:
        """Write the CA and the broker's keystore unless both are there."""
        if self.ca_file.is_file() and self.keystore.is_file():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        ca_key_file = self.directory / "ca.key.pem"
        if ca_key_file.is_file() and self.ca_file.is_file():
            ca_key = serialization.load_pem_private_key(ca_key_file.read_bytes(), None)
            assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
            ca_cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        else:
            ca_key, ca_cert = new_ca("streamgen local CA")
            _write_private(ca_key_file, _pem_key(ca_key))
            self.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        key, cert = _broker_certificate(ca_key, ca_cert)
        keystore = pkcs12.serialize_key_and_certificates(
            b"broker",
            key,
            cert,
            [ca_cert],
            serialization.BestAvailableEncryption(self.keystore_password.encode()),
        )
        _write_private(self.keystore, keystore)

    def server_properties(self) -> dict[str, str]:
        """The broker's TLS settings, for every TLS listener."""
        return {
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(self.keystore),
            "ssl.keystore.password": self.keystore_password,
            "ssl.key.password": self.keystore_password,
        }


def new_ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA (basicConstraints CA:TRUE, keyCertSign) named ``name``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _broker_certificate(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    names = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
        .add_extension(names, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(data)
