"""The secure stack's CA and broker certificate: a real chain that a TLS client verifies."""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from streamgen.local.tls import BrokerTls


def test_the_broker_certificate_is_signed_by_the_stack_ca_for_localhost(tmp_path: Path) -> None:
    tls = BrokerTls(tmp_path / "tls", "keystore-password")
    tls.ensure()
    ca = x509.load_pem_x509_certificate(tls.ca_file.read_bytes())
    key, cert, chain = pkcs12.load_key_and_certificates(
        tls.keystore.read_bytes(), b"keystore-password"
    )
    assert key is not None and cert is not None
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert [c.subject for c in chain] == [ca.subject]
    # Python's own TLS stack takes the CA file as a trust anchor.
    ssl.create_default_context(cafile=str(tls.ca_file))
    for private in (tls.keystore, tls.directory / "ca.key.pem"):
        assert private.stat().st_mode & 0o777 == 0o600


def test_ensure_keeps_the_ca_that_clients_already_trust(tmp_path: Path) -> None:
    tls = BrokerTls(tmp_path / "tls", "pw")
    tls.ensure()
    first_ca = tls.ca_file.read_bytes()
    tls.keystore.unlink()  # a lost broker key is issued again under the same CA
    tls.ensure()
    assert tls.ca_file.read_bytes() == first_ca
    _, cert, _ = pkcs12.load_key_and_certificates(tls.keystore.read_bytes(), b"pw")
    assert cert is not None
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(first_ca))
