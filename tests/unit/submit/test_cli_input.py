"""`streamgen submit` refuses bad input before it ever contacts Kafka."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from streamgen.cli import main
from streamgen.cli.submit import FIELD_FLAGS, submit
from streamgen.contracts.request import GenerationRequest

# Nothing listens here: a test that reached Kafka would fail with a different message.
NO_BROKER = ["--bootstrap-servers", "127.0.0.1:9"]


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["submit", *NO_BROKER, *args])


def test_every_request_field_has_a_flag() -> None:
    flags = {p.name for p in submit.params}
    fields = {f.name for f in dataclasses.fields(GenerationRequest)}
    assert set(FIELD_FLAGS) == fields - {"created_at", "metadata", "adapters"}
    assert set(FIELD_FLAGS) | {"metadata", "adapters"} <= flags


def test_bad_jsonl_line_is_named_and_nothing_is_published(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    path.write_text('{"prompt": "ok"}\n{"prompt": "x", "steps": "many"}\n')
    result = run("--jsonl", str(path))
    assert result.exit_code == 1
    assert f"{path}:2: field 'steps': expected an integer, got str 'many'" in result.output


def test_invalid_values_are_listed_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    path.write_text('{"prompt": "ok", "width": 100}\n{"prompt": " "}\n')
    result = run("--jsonl", str(path))
    assert result.exit_code == 1
    assert "2 invalid request(s), nothing published" in result.output
    assert f"{path}:1: width=100 is invalid: a multiple of 8 in [64, 2048]" in result.output
    assert f"{path}:2: prompt=' ' is invalid" in result.output


def test_invalid_flag_values_are_refused() -> None:
    result = run("--prompt", "a cat", "--guidance-scale", "nan")
    assert result.exit_code == 1
    assert "flags: guidance_scale=nan is invalid: a finite number" in result.output
    unknown = run("--prompt", "a cat", "--scheduler", "plms")
    assert "scheduler='plms' is invalid: one of " in unknown.output
    assert "dpmpp_2m" in unknown.output


def test_missing_template_column_names_the_header(tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text("sku,name\nA1,chair\n")
    result = run("--csv", str(path), "--template", "photo of {name} on {background}")
    assert result.exit_code == 1
    assert f"{path}:1: template column(s) background not in the header (sku, name)" in (
        result.output
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--template", "{name}", "--prompt", "x"], "--template: needs --csv"),
        (["--jsonl", "{a}", "--csv", "{b}"], "--jsonl/--csv: give one of them, not both"),
        (["--jsonl", "{a}", "--count", "3"], "--count: only applies to requests from flags"),
        (["--jsonl", "{a}", "--request-id", "x"], "--request-id: only applies to a request"),
        (["--csv", "{b}", "--prompt", "x"], "--prompt: with --csv the prompt comes from"),
        (["--prompt", "x", "--deadline", "soon"], "'soon' is not an ISO 8601 timestamp"),
        ([], "--prompt: required unless --jsonl or --csv is given"),
    ],
)
def test_conflicting_flags(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "a.jsonl").write_text('{"prompt": "x"}\n')
    (tmp_path / "b.csv").write_text("prompt\nx\n")
    files = {"{a}": str(tmp_path / "a.jsonl"), "{b}": str(tmp_path / "b.csv")}
    args = [files.get(a, a) for a in args]
    result = run(*args)
    assert result.exit_code == 1
    assert message in result.output


def test_bad_metadata_pair_is_a_usage_error() -> None:
    result = run("--prompt", "x", "--metadata", "novalue")
    assert result.exit_code == 2
    assert "expected KEY=VALUE, got 'novalue'" in result.output


def test_bad_setting_names_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "streamgen.toml"
    config.write_text("[kafka]\nbootstrap = 'x'\n")
    result = run("--config", str(config), "--prompt", "x")
    assert result.exit_code == 1
    assert "setting 'kafka.bootstrap': unknown setting" in result.output


def test_no_validate_still_refuses_what_avro_cannot_carry(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    path.write_text(
        '{"prompt": "ok", "width": 100}\n{"prompt": "x", "seed": 18446744073709551616}\n'
    )
    result = run("--jsonl", str(path), "--no-validate")
    assert result.exit_code == 1
    assert "1 invalid request(s), nothing published" in result.output
    assert f"{path}:2: GenerationRequest does not fit its schema" in result.output
    assert "seed" in result.output


@pytest.mark.parametrize("flag", ["--timeout", "--delivery-timeout"])
def test_negative_timeouts_are_usage_errors(flag: str) -> None:
    result = run("--prompt", "x", flag, "-1")
    assert result.exit_code == 2
    assert flag in result.output


def test_set_reaches_the_settings_and_a_bad_one_names_the_setting() -> None:
    result = run("--set", "worker.max_in_flight=0", "--prompt", "x")
    assert result.exit_code == 1
    assert "setting 'worker.max_in_flight': must be > 0, got 0" in result.output


def test_a_dedicated_flag_wins_over_set() -> None:
    result = run("--set", "store.url=ftp://set", "--store", "ftp://flag", "--prompt", "x")
    assert result.exit_code == 1
    assert "'ftp://flag': expected file://DIR or s3://BUCKET" in result.output


def test_store_url_is_a_deprecated_name_of_store() -> None:
    result = run("--store-url", "ftp://old", "--prompt", "x")
    assert result.exit_code == 1
    assert "warning: --store-url is deprecated; use --store" in result.output
    assert "setting 'store.url': 'ftp://old'" in result.output
    assert "--store-url" not in submit.get_help(click.Context(submit))


def test_store_and_its_deprecated_name_together_are_refused() -> None:
    result = run("--store-url", "file:///a", "--store", "file:///b", "--prompt", "x")
    assert result.exit_code == 2
    assert "give --store only" in result.output


def test_a_bad_tenant_is_refused_before_anything_is_published() -> None:
    result = CliRunner().invoke(main, ["submit", "--prompt", "p", "--tenant", "two words"])
    assert result.exit_code == 1, result.output
    assert "tenant='two words' is invalid" in result.output


def test_adapters_from_flags_and_jsonl_are_checked_before_publishing(tmp_path: Path) -> None:
    many = [arg for i in range(5) for arg in ("--adapter", f"s3://b/lora/{i}.safetensors@0.5")]
    result = run("--prompt", "a mug", *many)
    assert result.exit_code == 1
    assert "adapters='5 adapters' is invalid: at most 4" in result.output
    path = tmp_path / "batch.jsonl"
    path.write_text(
        '{"prompt": "ok", "adapters": [{"uri": "s3://b/a.safetensors", "scale": 9}]}\n'
        '{"prompt": "x", "adapters": [{"uri": "s3://b/a.safetensors", "scale": "high"}]}\n'
    )
    result = run("--jsonl", str(path))
    assert result.exit_code == 1
    assert f"{path}:2: field 'adapters[0].scale': expected a number, got 'high'" in result.output


def test_adapter_values_become_adapters() -> None:
    from datetime import UTC, datetime

    from streamgen.contracts.request import Adapter
    from streamgen.submit.fields import adapter_flag, from_json, from_text

    assert adapter_flag("s3://b/a.safetensors@0.5") == Adapter("s3://b/a.safetensors", 0.5)
    assert adapter_flag("s3://b/a.safetensors") == Adapter("s3://b/a.safetensors", 1.0)
    assert adapter_flag("s3://b/me@home.safetensors") == Adapter("s3://b/me@home.safetensors")
    assert adapter_flag("s3://b/x@y/a") == Adapter("s3://b/x@y/a")  # an @ inside the key
    assert adapter_flag("s3://b/a@v2@0.25") == Adapter("s3://b/a@v2", 0.25)
    now = datetime.now(UTC)
    listed = [{"uri": "s3://b/a"}, {"uri": "s3://b/c", "scale": -2}]
    expected = (Adapter("s3://b/a"), Adapter("s3://b/c", -2.0))
    assert from_json("adapters", listed, now) == expected
    assert from_text(
        "adapters", '[{"uri": "s3://b/a"}, {"uri": "s3://b/c", "scale": -2}]', now
    ) == (expected)
    assert from_text("adapters", "", now) == ()
    for bad, field in (({"uri": "s3://b/a"}, "adapters"), ([{"url": "x"}], "adapters[0]")):
        with pytest.raises(ValueError, match=f"field '{re.escape(field)}'"):
            from_json("adapters", bad, now)


@pytest.mark.parametrize("scale", ["nan", "inf", "-inf", "abc", "", " 0.5x", "1e999"])
def test_a_mistyped_adapter_scale_is_refused_not_read_as_the_uri(scale: str) -> None:
    from streamgen.submit.fields import FieldError, adapter_flag

    with pytest.raises(FieldError, match="the scale after the last '@' must be a finite number"):
        adapter_flag(f"s3://b/a.safetensors@{scale}")
