"""`streamgen lag` for a share group through the secure broker: streamgen's own Kafka client
(DescribeShareGroupOffsets) logs in with SCRAM over SASL_PLAINTEXT and over SASL_SSL, verifying
the broker's certificate, as librdkafka does with the same kafka.client_config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from streamgen.errors import ConfigError
from streamgen.kafka_protocol.share_offsets import share_offsets
from streamgen.local.stack import LocalStack
from streamgen.local.tls import new_ca
from streamgen.ops.lag_probe import LagProbe
from streamgen.settings import Settings
from tests.integration.test_lag_share import accept_first, produce, share_settings
from tests.integration.worker.test_secure_broker import secure_settings
from tests.integration.worker.test_tls_broker import over_tls

pytestmark = pytest.mark.integration

__all__ = ["secure_settings"]  # the fixture


def as_admin(stack: LocalStack, settings: Settings) -> Settings:
    kafka = dataclasses.replace(settings.kafka, client_config=stack.kafka_client_config("admin"))
    return share_settings(dataclasses.replace(settings, kafka=kafka))


def test_share_lag_over_scram_and_over_tls(
    secure_stack: LocalStack, secure_settings: Settings
) -> None:
    settings = as_admin(secure_stack, secure_settings)
    produce(settings, {0: 3})
    accept_first(settings, {0: 1}, seen=3)
    topic = settings.topics.requests
    tps = [(topic, 0), (topic, 1)]
    tls = over_tls(secure_stack, settings, "admin")
    assert tls.kafka.client_config["security.protocol"].upper() == "SASL_SSL"
    for each in (settings, tls):
        found = share_offsets(each.kafka, each.worker.group_id, tps)
        assert [found[tp].lag for tp in tps] == [2, None]
    report = LagProbe(tls).snapshot(tls.worker.group_id, topic, results_topic=None, sample=0)
    assert [p.lag for p in report.partitions] == [2, 0, 0]


def test_a_wrong_password_or_ca_names_kafka_client_config(
    secure_stack: LocalStack, secure_settings: Settings, tmp_path: Path
) -> None:
    settings = as_admin(secure_stack, secure_settings)
    tps = [(settings.topics.requests, 0)]
    wrong = {**settings.kafka.client_config, "sasl.password": "not-the-password"}
    kafka = dataclasses.replace(settings.kafka, client_config=wrong)
    with pytest.raises(ConfigError, match="refused the login") as refused:
        share_offsets(kafka, settings.worker.group_id, tps)
    assert refused.value.setting == "kafka.client_config"
    assert "not-the-password" not in str(refused.value)
    _, stranger = new_ca("not the stack's CA")
    wrong_ca = tmp_path / "wrong-ca.pem"
    wrong_ca.write_bytes(stranger.public_bytes(serialization.Encoding.PEM))
    tls = over_tls(secure_stack, settings, "admin", wrong_ca)
    with pytest.raises(ConfigError, match="CERTIFICATE_VERIFY_FAILED") as untrusted:
        share_offsets(tls.kafka, settings.worker.group_id, tps)
    assert untrusted.value.setting == "kafka.client_config"
