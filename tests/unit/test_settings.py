"""Settings: one source of truth, precedence defaults < file < env < flags, invalid values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamgen.configuration import load_settings
from streamgen.errors import ConfigError
from streamgen.settings import Settings


def test_defaults_are_valid() -> None:
    assert load_settings(env={}) == Settings()


def test_precedence_file_then_env_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "streamgen.toml"
    config.write_text(
        '[worker]\nmax_wait_ms = 50\nmax_in_flight = 10\n[kafka]\nbootstrap_servers = "file:1"\n'
    )
    env = {"STREAMGEN_WORKER_MAX_IN_FLIGHT": "20", "STREAMGEN_KAFKA_BOOTSTRAP_SERVERS": "env:1"}
    s = load_settings({"kafka.bootstrap_servers": "flag:1"}, config_file=config, env=env)
    assert s.worker.max_wait_ms == 50  # file
    assert s.worker.max_in_flight == 20  # env beats file
    assert s.kafka.bootstrap_servers == "flag:1"  # flag beats env


def test_maps_and_booleans_parse_from_text() -> None:
    env = {
        "STREAMGEN_ENGINE_MODELS": "tiny=/models/tiny, sd15=runwayml/sd15",
        "STREAMGEN_KAFKA_CLIENT_CONFIG": "security.protocol=SASL_SSL,sasl.mechanism=PLAIN",
        "STREAMGEN_ENGINE_CHANNELS_LAST": "yes",
    }
    s = load_settings(env=env)
    assert s.engine.models == {"tiny": "/models/tiny", "sd15": "runwayml/sd15"}
    assert s.kafka.client_config["security.protocol"] == "SASL_SSL"
    assert s.engine.channels_last is True


def test_init_image_prefixes_are_a_list_in_toml_and_comma_separated_text(tmp_path: Path) -> None:
    config = tmp_path / "streamgen.toml"
    config.write_text('[store]\nurl = "s3://images"\ninit_image_prefixes = ["s3://images/in"]\n')
    assert load_settings(config_file=config, env={}).store.init_image_prefixes == (
        "s3://images/in",
    )
    env = {
        "STREAMGEN_STORE_URL": "s3://images",
        "STREAMGEN_STORE_INIT_IMAGE_PREFIXES": "s3://images/in, s3://uploads,",
    }
    s = load_settings(env=env)
    assert s.store.init_image_prefixes == ("s3://images/in", "s3://uploads")
    assert s.store.init_image_max_bytes == 20 * 1024 * 1024


@pytest.mark.parametrize(
    ("source", "name", "message"),
    [
        ({"STREAMGEN_WORKER_MAX_IN_FLIGHT": "lots"}, "worker.max_in_flight", "expected int"),
        ({"STREAMGEN_WORKER_MAX_IN_FLIGHT": "0"}, "worker.max_in_flight", "must be > 0"),
        ({"STREAMGEN_ENGINE_DTYPE": "float8"}, "engine.dtype", "float8"),
        ({"STREAMGEN_STORE_URL": "ftp://x"}, "store.url", "file://DIR or s3://"),
        ({"STREAMGEN_ENGINE_COMPILE": "maybe"}, "engine.compile", "true/false"),
        ({"STREAMGEN_ENGINE_MODELS": "tiny"}, "engine.models", "KEY=VALUE"),
        ({"STREAMGEN_WORKER_RETRY_MAX_MS": "1"}, "worker.retry_max_ms", ">= worker.retry_initial"),
        ({"STREAMGEN_STORE_INIT_IMAGE_PREFIXES": "s3://img"}, "store.init_image_prefixes", "file:"),
        ({"STREAMGEN_STORE_INIT_IMAGE_PREFIXES": "ftp://x"}, "store.init_image_prefixes", "s3:"),
        ({"STREAMGEN_STORE_INIT_IMAGE_MAX_BYTES": "0"}, "store.init_image_max_bytes", "> 0"),
        ({"STREAMGEN_WORKER_GROUP_PROTOCOL": "eager"}, "worker.group_protocol", "classic"),
        ({"STREAMGEN_WORKER_MODE": "queue"}, "worker.mode", "group"),
        ({"STREAMGEN_WORKER_SHARE_DELIVERY_LIMIT": "0"}, "worker.share_delivery_limit", ">= 1"),
        ({"STREAMGEN_WORKER_SHARE_BATCH_S": "0"}, "worker.share_batch_s", "> 0"),
        ({"STREAMGEN_WORKER_SHARE_LOCK_MARGIN_S": "-1"}, "worker.share_lock_margin_s", ">= 0"),
        (
            {
                "STREAMGEN_WORKER_MODE": "share",
                "STREAMGEN_WORKER_TENANT_DEFAULT_MAX_IN_FLIGHT": "2",
            },
            "worker.tenant_max_in_flight",
            "share mode",
        ),
        ({"STREAMGEN_WORKER_FETCH_BUFFER_RECORDS": "0"}, "worker.fetch_buffer_records", "> 0"),
        ({"STREAMGEN_WORKER_FETCH_BUFFER_BYTES": "-1"}, "worker.fetch_buffer_bytes", "> 0"),
        ({"STREAMGEN_KAFKA_CONNECT_TIMEOUT_S": "0"}, "kafka.connect_timeout_s", "> 0"),
        ({"STREAMGEN_STORE_CONNECT_TIMEOUT_S": "soon"}, "store.connect_timeout_s", "float"),
        ({"STREAMGEN_STORE_CREATE_BUCKET": "perhaps"}, "store.create_bucket", "true/false"),
        ({"STREAMGEN_STORE_IMAGE_FORMAT": "gif"}, "store.image_format", "png|jpeg|webp"),
        ({"STREAMGEN_STORE_IMAGE_FORMAT": "jpg"}, "store.image_format", "png|jpeg|webp"),
        ({"STREAMGEN_WORKER_PROGRESS_INTERVAL_S": "-1"}, "worker.progress_interval_s", ">= 0"),
        ({"STREAMGEN_STORE_ADAPTER_MAX_BYTES": "0"}, "store.adapter_max_bytes", "> 0"),
        ({"STREAMGEN_ENGINE_ADAPTER_CACHE_BYTES": "-1"}, "engine.adapter_cache_bytes", "> 0"),
        (
            {"STREAMGEN_VALIDATION_MAX_ADAPTERS_PER_REQUEST": "-1"},
            "validation.max_adapters_per_request",
            ">= 0",
        ),
        (
            {"STREAMGEN_VALIDATION_MAX_ADAPTER_SCALE": "inf"},
            "validation.max_adapter_scale",
            "finite",
        ),
        (
            {"STREAMGEN_WORKER_PROGRESS": "true", "STREAMGEN_TOPICS_PROGRESS": ""},
            "topics.progress",
            "worker.progress is on",
        ),
    ],
)
def test_an_invalid_setting_is_named(source: dict[str, str], name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(env=source)
    assert info.value.setting == name


def test_every_output_format_may_be_the_workers_default() -> None:
    for name in ("png", "jpeg", "webp"):
        assert load_settings(env={"STREAMGEN_STORE_IMAGE_FORMAT": name}).store.image_format == name


def test_unknown_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown setting; did you mean worker\.max_wait_ms"):
        load_settings({"worker.max_wiat_ms": 5}, env={})
    with pytest.raises(ConfigError, match="not a known setting"):
        load_settings({"nonsense": 5}, env={})
    config = tmp_path / "bad.toml"
    config.write_text("[wokrer]\nx = 1\n")
    with pytest.raises(ConfigError, match="unknown section"):
        load_settings(config_file=config, env={})
    config.write_text("not toml = = =")
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(config_file=config, env={})


def test_the_kafka_login_can_come_from_a_properties_file(tmp_path: Path) -> None:
    login = tmp_path / "kafka.properties"
    login.write_text(
        "# a comment\n! another\n\nsasl.username = worker\nsasl.password=a,b=c\n"
        "security.protocol=PLAINTEXT\n"
    )
    env = {
        "STREAMGEN_KAFKA_CLIENT_CONFIG_FILE": str(login),
        "STREAMGEN_KAFKA_CLIENT_CONFIG": "security.protocol=SASL_SSL",
    }
    config = load_settings(env=env).kafka.client_config
    # A value may hold "," and "="; client_config wins over the file on a key both set.
    assert config == {
        "sasl.username": "worker",
        "sasl.password": "a,b=c",
        "security.protocol": "SASL_SSL",
    }


def test_store_keys_can_come_from_files(tmp_path: Path) -> None:
    (tmp_path / "access").write_text("AKIA\n")
    (tmp_path / "secret").write_text("s3cr3t\r\n")
    env = {
        "STREAMGEN_STORE_ACCESS_KEY_FILE": str(tmp_path / "access"),
        "STREAMGEN_STORE_SECRET_KEY_FILE": str(tmp_path / "secret"),
    }
    store = load_settings(env=env).store
    assert (store.access_key, store.secret_key) == ("AKIA", "s3cr3t")


@pytest.mark.parametrize(
    ("env", "name", "message"),
    [
        ({"STREAMGEN_STORE_SECRET_KEY_FILE": "{dir}/missing"}, "store.secret_key_file", "cannot"),
        ({"STREAMGEN_STORE_SECRET_KEY_FILE": "{dir}/empty"}, "store.secret_key_file", "empty"),
        ({"STREAMGEN_STORE_ACCESS_KEY_FILE": "{dir}"}, "store.access_key_file", "cannot read"),
        (
            {"STREAMGEN_STORE_SECRET_KEY_FILE": "{dir}/lost", "STREAMGEN_STORE_SECRET_KEY": "x"},
            "store.secret_key_file",
            "not both",
        ),
        ({"STREAMGEN_KAFKA_CLIENT_CONFIG_FILE": "{dir}/missing"}, "kafka.client_config_file", "No"),
        (
            {"STREAMGEN_KAFKA_CLIENT_CONFIG_FILE": "{dir}/lost"},
            "kafka.client_config_file",
            "line 2",
        ),
    ],
)
def test_an_unreadable_secret_file_is_named_and_its_content_never_shown(
    tmp_path: Path, env: dict[str, str], name: str, message: str
) -> None:
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "lost").write_text("sasl.username=u\nhunter2\n")  # a password lost its key
    env = {key: value.format(dir=tmp_path) for key, value in env.items()}
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(env=env)
    assert info.value.setting == name
    assert "hunter2" not in str(info.value)


def test_secrets_stay_out_of_reprs_and_parse_errors() -> None:
    env = {
        "STREAMGEN_KAFKA_CLIENT_CONFIG": "sasl.username=u,sasl.password=hunter2",
        "STREAMGEN_STORE_SECRET_KEY": "s3cr3t",
    }
    shown = repr(load_settings(env=env))
    assert "hunter2" not in shown
    assert "s3cr3t" not in shown
    # A password holding "," splits into a pair without "="; its fragment is not echoed.
    env = {"STREAMGEN_KAFKA_CLIENT_CONFIG": "sasl.password=hun,ter2"}
    with pytest.raises(ConfigError, match="item without '='") as info:
        load_settings(env=env)
    assert "ter2" not in str(info.value)


def test_the_metrics_address_defaults_to_all_interfaces() -> None:
    assert load_settings(env={}).worker.metrics_address == "0.0.0.0"
    env = {"STREAMGEN_WORKER_METRICS_ADDRESS": "127.0.0.1"}
    assert load_settings(env=env).worker.metrics_address == "127.0.0.1"


@pytest.mark.parametrize("source", ["file", "env", "flag"])
def test_a_renamed_setting_is_read_under_its_old_name_with_a_warning(
    source: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "streamgen.toml"
    config.write_text("[engine]\nencode_threads = 3\n")
    given = {
        "file": {"config_file": config},
        "env": {"env": {"STREAMGEN_ENGINE_ENCODE_THREADS": "3"}},
        "flag": {"overrides": {"engine.encode_threads": 3}},
    }[source]
    s = load_settings(**{"env": {}, **given})  # type: ignore[arg-type]
    assert s.worker.encode_threads == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["setting engine.encode_threads is deprecated: use worker.encode_threads"]


def test_the_new_name_wins_over_the_old_and_a_later_source_over_both(tmp_path: Path) -> None:
    config = tmp_path / "streamgen.toml"
    config.write_text("[engine]\nencode_threads = 3\n[worker]\nencode_threads = 5\n")
    assert load_settings(config_file=config, env={}).worker.encode_threads == 5
    env = {"STREAMGEN_ENGINE_ENCODE_THREADS": "2"}
    assert load_settings(config_file=config, env=env).worker.encode_threads == 2
    with pytest.raises(ConfigError, match=r"worker\.encode_threads"):
        load_settings({"engine.encode_threads": 0}, env={})


def test_a_misspelt_environment_variable_is_refused_with_the_likely_name() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(env={"STREAMGEN_WORKER_MAX_INFLIGHT": "8"})
    assert raised.value.setting == "STREAMGEN_WORKER_MAX_INFLIGHT"
    assert "did you mean STREAMGEN_WORKER_MAX_IN_FLIGHT?" in str(raised.value)


def test_variables_outside_the_settings_sections_are_left_to_their_tools() -> None:
    env = {
        "STREAMGEN_CACHE_DIR": "/tmp/x",  # the dev stack's caches
        "STREAMGEN_JAVA": "/opt/jre/bin/java",  # the broker bundle
        "STREAMGEN_WORKER_MAX_IN_FLIGHT": "8",
        "STREAMGEN_ENGINE_ENCODE_THREADS": "3",  # a renamed setting is still a setting
    }
    settings = load_settings(env=env)
    assert settings.worker.max_in_flight == 8
    assert settings.worker.encode_threads == 3
