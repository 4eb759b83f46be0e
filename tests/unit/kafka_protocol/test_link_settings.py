"""kafka.client_config values streamgen's own Kafka client cannot honour are refused naming
the setting, before anything is sent: never a connection weaker than the user asked for."""

from __future__ import annotations

import socket

import pytest

from streamgen.errors import ConfigError
from streamgen.kafka_protocol.link import KafkaLink, _tls


def test_an_unknown_security_protocol_is_refused_before_connecting() -> None:
    with pytest.raises(ConfigError, match=r"security\.protocol 'sasl_tls'") as caught:
        KafkaLink("127.0.0.1", 1, {"security.protocol": "SASL_TLS"}, 1.0)
    assert caught.value.setting == "kafka.client_config"


def test_a_tls_property_it_does_not_read_is_refused_naming_it() -> None:
    left, right = socket.socketpair()
    try:
        with pytest.raises(ConfigError, match=r"ssl\.keystore\.location: not read") as caught:
            _tls(left, "broker", {"ssl.keystore.location": "/k.p12", "ssl.ca.location": "/c"})
        assert caught.value.setting == "kafka.client_config"
    finally:
        left.close()
        right.close()
