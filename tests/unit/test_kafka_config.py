"""Every Kafka client's configuration comes from streamgen.kafka_config: the address, the user's
client_config (its file folded in), the role's defaults under it and its guarantees over it."""

from __future__ import annotations

import logging
from pathlib import Path

from streamgen.configuration import load_settings
from streamgen.kafka_config import admin_config, consumer_config, producer_config
from streamgen.ops.replay_run import REPLAY_MESSAGE_MAX_BYTES, Replayer
from streamgen.settings import KafkaSettings, Settings, WorkerSettings
from streamgen.submit.publish import request_producer_config
from streamgen.worker.assembly import consumer_config as worker_consumer_config
from streamgen.worker.assembly import producer_config as worker_producer_config

LOGIN = {"security.protocol": "SASL_PLAINTEXT", "sasl.username": "w", "sasl.password": "pw"}
KAFKA = KafkaSettings(bootstrap_servers="b:1", client_config=LOGIN)


def test_an_admin_client_gets_the_address_and_the_login_only() -> None:
    assert admin_config(KAFKA) == {"bootstrap.servers": "b:1", **LOGIN}


def test_the_users_config_overrides_defaults_and_never_what_is_required() -> None:
    kafka = KafkaSettings(client_config={"linger.ms": "50", "acks": "1"})
    for config in (
        producer_config(kafka, defaults={"linger.ms": 5}, required={"acks": "all"}),
        consumer_config(kafka, "g", defaults={"linger.ms": 5}, required={"acks": "all"}),
    ):
        assert config["linger.ms"] == "50"
        assert config["acks"] == "all"


def test_a_consumer_joins_the_group_streamgen_names_whatever_the_login_says() -> None:
    kafka = KafkaSettings(client_config={"group.id": "from-a-properties-file"})
    assert consumer_config(kafka, "streamgen")["group.id"] == "streamgen"


def test_librdkafka_logs_are_routed_only_when_asked() -> None:
    routed = producer_config(KAFKA, route_logs=True)["logger"]
    assert isinstance(routed, logging.Logger) and routed.name == "streamgen.librdkafka"
    assert "logger" not in consumer_config(KAFKA, "g")
    assert "logger" not in admin_config(KAFKA)


def test_the_login_file_reaches_every_client(tmp_path: Path) -> None:
    login = tmp_path / "client.properties"
    login.write_text("sasl.password=from-file\nsasl.username=file-user\n")
    env = {
        "STREAMGEN_KAFKA_CLIENT_CONFIG_FILE": str(login),
        "STREAMGEN_KAFKA_CLIENT_CONFIG": "sasl.username=env-user",
    }
    kafka = load_settings(env=env).kafka
    for config in (admin_config(kafka), producer_config(kafka), consumer_config(kafka, "g")):
        assert config["sasl.password"] == "from-file"
        assert config["sasl.username"] == "env-user"  # client_config wins over its file


def test_the_worker_consumer_commits_by_hand_unless_the_user_says_otherwise() -> None:
    settings = Settings(
        kafka=KafkaSettings(client_config={"fetch.queue.backoff.ms": "100"}),
        worker=WorkerSettings(group_instance_id="host-1"),
    )
    config = worker_consumer_config(settings, "w-1")
    assert config["group.id"] == settings.worker.group_id
    assert config["client.id"] == "w-1"
    assert config["enable.auto.commit"] is False
    assert config["enable.auto.offset.store"] is False
    assert config["fetch.queue.backoff.ms"] == "100"
    assert config["group.instance.id"] == "host-1"
    assert config["partition.assignment.strategy"] == "cooperative-sticky"
    assert "logger" not in config
    assert "group.instance.id" not in worker_consumer_config(Settings(), "w-1")


def test_the_worker_producer_names_itself_and_routes_its_log() -> None:
    settings = Settings(kafka=KAFKA)
    config = worker_producer_config(settings, "w-1")
    assert config["client.id"] == "w-1-out"
    assert config["sasl.password"] == "pw"
    assert isinstance(config["logger"], logging.Logger)


def test_the_request_producer_keeps_its_guarantees() -> None:
    kafka = KafkaSettings(client_config={"acks": "1", "enable.idempotence": "false"})
    config = request_producer_config(kafka, delivery_timeout_s=2.5)
    assert config["acks"] == "all"
    assert config["enable.idempotence"] is True
    assert config["message.timeout.ms"] == 2500
    assert isinstance(config["logger"], logging.Logger)


def test_the_replayer_may_be_told_a_smaller_record_limit_but_not_to_commit_by_itself() -> None:
    settings = Settings(
        kafka=KafkaSettings(
            client_config={"message.max.bytes": "2000000", "enable.auto.commit": "true"}
        )
    )
    replayer = Replayer(settings, group="g")
    assert Replayer(Settings(), group="g")._producer_config["message.max.bytes"] == (
        REPLAY_MESSAGE_MAX_BYTES
    )
    assert replayer._producer_config["message.max.bytes"] == "2000000"
    assert replayer._producer_config["acks"] == "all"
    assert replayer._consumer_config["enable.auto.commit"] is False
    assert replayer._consumer_config["group.id"] == "g"
