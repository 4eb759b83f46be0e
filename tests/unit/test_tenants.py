"""worker.tenants and worker.tenant_default_weight: parsed once, mistakes name the setting."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from fastavro import schemaless_writer

from streamgen.cli import main
from streamgen.configuration import load_settings
from streamgen.contracts.codec import request_codec, result_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.result import GenerationResult, WorkerIdentity
from streamgen.contracts.schemas import REQUEST_SCHEMA, load_catalog
from streamgen.contracts.validation import validate
from streamgen.errors import ConfigError, InvalidRequest
from streamgen.exit_codes import EXIT_CONFIG
from streamgen.settings import KafkaSettings, Tenant, TenantCap, ValidationBounds
from streamgen.tenants import (
    OTHER_TENANTS,
    parse_tenants,
    tenant_caps,
    tenant_label,
    tenant_names,
    tenant_weights,
)


def test_text_list_and_table_give_the_same_tenants() -> None:
    expected = (Tenant("search", 3.0), Tenant("ads", 1.0))
    assert parse_tenants("search=3, ads=1") == expected
    assert parse_tenants(["search=3", "ads=1"]) == expected
    assert parse_tenants({"search": 3, "ads": 1}) == expected


def test_no_tenants_configured_is_the_default() -> None:
    settings = load_settings({}, env={})
    assert settings.worker.tenants == ()
    assert settings.worker.tenant_default_weight == 1.0
    assert tenant_weights(settings.worker) == {}


def test_from_the_environment_and_back_through_str() -> None:
    settings = load_settings({}, env={"STREAMGEN_WORKER_TENANTS": "search=3,ads=0.5"})
    assert settings.worker.tenants == (Tenant("search", 3.0), Tenant("ads", 0.5))
    assert ",".join(map(str, settings.worker.tenants)) == "search=3.0,ads=0.5"


@pytest.mark.parametrize(
    ("overrides", "setting", "message"),
    [
        ({"worker.tenants": "a=0"}, "worker.tenants", "weight must be > 0"),
        ({"worker.tenants": "a=-2"}, "worker.tenants", "weight must be > 0"),
        ({"worker.tenants": "a=nan"}, "worker.tenants", "weight must be > 0"),
        ({"worker.tenants": "a=x"}, "worker.tenants", "'x' is not a number"),
        ({"worker.tenants": "a"}, "worker.tenants", "expected NAME=WEIGHT"),
        ({"worker.tenants": "a=1,a=2"}, "worker.tenants", "named twice"),
        ({"worker.tenants": "a b=1"}, "worker.tenants", "tenant name 'a b'"),
        ({"worker.tenants": "other=1"}, "worker.tenants", "metrics label"),
        ({"worker.tenant_default_weight": "0"}, "worker.tenant_default_weight", "must be > 0"),
        ({"worker.tenant_max_in_flight": "a=-1"}, "worker.tenant_max_in_flight", "must be >= 0"),
        ({"worker.tenant_max_in_flight": "a=1.5"}, "worker.tenant_max_in_flight", "whole number"),
        ({"worker.tenant_max_in_flight": "a"}, "worker.tenant_max_in_flight", "NAME=CAP"),
        ({"worker.tenant_max_in_flight": "a=1,a=2"}, "worker.tenant_max_in_flight", "twice"),
        ({"worker.tenant_max_in_flight": "a/b=1"}, "worker.tenant_max_in_flight", "'a/b'"),
        (
            {"worker.tenant_default_max_in_flight": "-1"},
            "worker.tenant_default_max_in_flight",
            "must be >= 0",
        ),
    ],
)
def test_a_bad_tenant_setting_names_the_setting(
    overrides: dict[str, str], setting: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides, env={})
    assert caught.value.setting == setting
    assert message in str(caught.value)


def test_a_zero_weight_stops_the_worker_with_exit_4_naming_the_setting() -> None:
    result = CliRunner().invoke(
        main, ["worker", "--model", "default=x", "--set", "worker.tenants=a=0"], env={}
    )
    assert result.exit_code == EXIT_CONFIG, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("streamgen: cannot start: setting 'worker.tenants'"), line


def test_a_negative_cap_stops_the_worker_with_exit_4_naming_the_setting() -> None:
    result = CliRunner().invoke(
        main,
        ["worker", "--model", "default=x", "--set", "worker.tenant_max_in_flight=flood=-4"],
        env={},
    )
    assert result.exit_code == EXIT_CONFIG, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("streamgen: cannot start: setting 'worker.tenant_max_in_flight'")


def test_caps_by_name_a_default_for_the_others_and_none_when_unset() -> None:
    assert tenant_caps(load_settings({}, env={}).worker) is None  # nothing is set aside
    assert tenant_caps(load_settings({"worker.tenant_max_in_flight": "a=0"}, env={}).worker) is None
    settings = load_settings(
        {}, env={"STREAMGEN_WORKER_TENANT_MAX_IN_FLIGHT": "flood=8,vip=0"}
    ).worker
    assert settings.tenant_max_in_flight == (TenantCap("flood", 8), TenantCap("vip", 0))
    assert ",".join(map(str, settings.tenant_max_in_flight)) == "flood=8,vip=0"
    cap = tenant_caps(settings)
    assert cap is not None and (cap("flood"), cap("vip"), cap("anyone")) == (8, 0, 0)
    with_default = load_settings(
        {"worker.tenant_max_in_flight": {"vip": 0}, "worker.tenant_default_max_in_flight": 4},
        env={},
    ).worker
    cap = tenant_caps(with_default)
    assert cap is not None and (cap("vip"), cap(""), cap("anyone")) == (0, 4, 4)


def test_capped_tenants_are_named_in_metrics_too() -> None:
    worker = load_settings(
        {"worker.tenants": "search=3", "worker.tenant_max_in_flight": "flood=2,search=4"}, env={}
    ).worker
    assert tenant_names(worker) == ["search", "flood"]


def test_unconfigured_tenants_share_one_metrics_label() -> None:
    configured = {"search": 3.0}
    assert tenant_label("search", configured) == "search"
    assert tenant_label("anyone-else", configured) == OTHER_TENANTS
    assert tenant_label("", configured) == OTHER_TENANTS


def test_a_request_names_its_tenant_in_a_checked_form() -> None:
    bounds = ValidationBounds()
    now = datetime(2030, 1, 1, tzinfo=UTC)
    ok = GenerationRequest(request_id="r1", prompt="p", tenant="team-a.prod_1")
    assert validate(ok, bounds, models=None, schedulers=None, now=now) is ok
    assert validate(ok.replace(tenant=""), bounds, models=None, schedulers=None, now=now)
    with pytest.raises(InvalidRequest, match=r"tenant='a b' is invalid"):
        validate(ok.replace(tenant="a b"), bounds, models=None, schedulers=None, now=now)


def test_a_request_without_tenant_from_an_older_producer_reads_as_the_default_tenant() -> None:
    older = next(s for s in load_catalog().versions(REQUEST_SCHEMA) if s.version == "v3")
    record = {k: v for k, v in GenerationRequest("r1", "p").to_record().items() if k != "tenant"}
    body = io.BytesIO()
    schemaless_writer(body, older.parsed, record)
    decoded = request_codec(KafkaSettings(), "t").decode(
        b"\xc3\x01" + older.fingerprint + body.getvalue()
    )
    assert decoded == GenerationRequest("r1", "p", tenant="")


def test_the_tenant_travels_in_the_request_and_in_its_result() -> None:
    request = GenerationRequest("r1", "p", tenant="search")
    codec = request_codec(KafkaSettings(), "t")
    assert codec.decode(codec.encode(request)).tenant == "search"
    result = GenerationResult(
        "r1", "SUCCEEDED", WorkerIdentity("w", "h", "cpu", "g"), tenant="search"
    )
    results = result_codec(KafkaSettings(), "t")
    assert results.decode(results.encode(result)).tenant == "search"
