"""Building requests from flags, JSONL and CSV + template: values, defaults, and line numbers."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given

from streamgen.contracts.request import GenerationRequest
from streamgen.settings import ValidationBounds
from streamgen.submit.sources import (
    InputError,
    Located,
    check_all,
    from_csv,
    from_flags,
    from_jsonl,
    template_columns,
)
from tests.unit.contracts.strategies import requests

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
TEMPLATE = "Professional product photography, {name}, {category}, {background} background"


def ids() -> Any:
    counter = itertools.count(1)
    return lambda: f"gen-{next(counter)}"


def jsonl(text: str, **defaults: Any) -> list[Located]:
    return from_jsonl(
        text.splitlines(keepends=True), source="in.jsonl", defaults=defaults, new_id=ids(), now=NOW
    )


def catalog(text: str, template: str | None = TEMPLATE, **defaults: Any) -> list[Located]:
    return from_csv(
        text.splitlines(keepends=True),
        source="cat.csv",
        template=template,
        defaults=defaults,
        new_id=ids(),
        now=NOW,
    )


def error_of(build: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(InputError) as caught:
        build(*args, **kwargs)
    return str(caught.value)


# -- flags ------------------------------------------------------------------------------------


def test_flags_make_count_requests_with_fresh_ids_and_spread_seeds() -> None:
    made = from_flags(
        {"prompt": "a chair", "seed": 100, "num_images": 2, "metadata": {"sku": "1"}},
        count=3,
        new_id=ids(),
        now=NOW,
    )
    assert [m.request.request_id for m in made] == ["gen-1", "gen-2", "gen-3"]
    assert [m.request.seed for m in made] == [100, 102, 104]
    assert all(m.request.created_at == NOW for m in made)
    assert made[0].request.metadata == {"sku": "1"}
    assert made[2].where == "flags (request 3 of 3)"


def test_flags_without_seed_leave_it_to_the_worker() -> None:
    (made,) = from_flags({"prompt": "x", "request_id": "mine"}, count=1, new_id=ids(), now=NOW)
    assert (made.request.request_id, made.request.seed, made.where) == ("mine", None, "flags")


@pytest.mark.parametrize(
    ("fields", "count", "message"),
    [
        ({"prompt": "x"}, 0, "--count: must be at least 1, got 0"),
        (
            {"prompt": "x", "request_id": "a"},
            2,
            "--request-id: names one request, but --count is 2",
        ),
        ({}, 1, "--prompt: required unless --jsonl or --csv is given"),
    ],
)
def test_flag_errors(fields: dict[str, Any], count: int, message: str) -> None:
    assert error_of(from_flags, fields, count=count, new_id=ids(), now=NOW) == message


# -- JSONL ------------------------------------------------------------------------------------


def test_jsonl_rows_override_flag_defaults_and_merge_metadata() -> None:
    made = jsonl(
        '{"prompt": "a lamp", "width": 768, "metadata": {"sku": "L1"}}\n'
        "\n"
        '{"request_id": "r-2", "prompt": "a desk", "seed": null, "deadline": "+60s"}\n',
        width=640,
        model="sd15",
        metadata={"batch": "b1", "sku": "default"},
    )
    first, second = (m.request for m in made)
    assert (first.width, first.model, first.request_id) == (768, "sd15", "gen-1")
    assert first.metadata == {"batch": "b1", "sku": "L1"}
    assert (second.width, second.request_id, second.seed) == (640, "r-2", None)
    assert second.deadline == NOW + timedelta(seconds=60)
    assert [m.where for m in made] == ["in.jsonl:1", "in.jsonl:3"]


def test_jsonl_timestamps_iso_and_epoch_millis() -> None:
    (made,) = jsonl('{"prompt": "p", "deadline": "2031-01-01T00:00:00Z", "created_at": 0}\n')
    assert made.request.deadline == datetime(2031, 1, 1, tzinfo=UTC)
    assert made.request.created_at == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"prompt": "ok"}\n{"prompt": "x",}\n', "in.jsonl:2: not valid JSON: "),
        ('{"prompt": "ok"}\n["prompt"]\n', "in.jsonl:2: expected a JSON object, got list"),
        ('{"prompt": "x", "colour": "red"}', "in.jsonl:1: field 'colour': unknown field; known"),
        (
            '{"prompt": "x", "width": "512"}',
            "in.jsonl:1: field 'width': expected an integer, got str",
        ),
        (
            '{"prompt": "x", "width": true}',
            "in.jsonl:1: field 'width': expected an integer, got bool",
        ),
        ('{"prompt": "x", "strength": "hi"}', "field 'strength': expected a number"),
        ('{"prompt": "x", "task": "inpaint"}', "field 'task': expected one of txt2img, img2img"),
        ('{"prompt": null}', "field 'prompt': must not be null; expected a string"),
        ('{"prompt": "x", "metadata": {"n": 1}}', "field 'metadata.n': values must be strings"),
        ('{"prompt": "x", "metadata": "a=b"}', "field 'metadata': expected an object"),
        ('{"prompt": "x", "deadline": "2031-01-01T00:00"}', "has no timezone; add Z or +HH:MM"),
        ('{"prompt": "x", "deadline": "tomorrow"}', "'tomorrow' is not an ISO 8601 timestamp"),
        ('{"prompt": "x", "deadline": 1.5}', "field 'deadline': expected an ISO 8601"),
        ('{"width": 512}', "in.jsonl:1: missing field 'prompt'"),
        ("\n\n", "in.jsonl: no requests (the file is empty)"),
    ],
)
def test_jsonl_errors_name_the_line(text: str, message: str) -> None:
    assert message in error_of(jsonl, text)


# -- CSV + template ---------------------------------------------------------------------------

CATALOG = (
    "sku,name,category,background,seed\n"
    "A1,oak chair,furniture,white,7\n"
    '"B2","lamp, brass",lighting,grey,\n'
)


def test_csv_fills_the_template_sets_fields_and_keeps_other_columns_as_metadata() -> None:
    first, second = (m.request for m in catalog(CATALOG, width=768))
    assert first.prompt == (
        "Professional product photography, oak chair, furniture, white background"
    )
    assert (first.seed, first.width, first.metadata) == (7, 768, {"sku": "A1"})
    assert second.prompt.startswith("Professional product photography, lamp, brass, lighting")
    assert second.seed is None  # an empty cell means "not given"
    assert [m.where for m in catalog(CATALOG)] == ["cat.csv:2", "cat.csv:3"]


def test_csv_with_a_prompt_column_needs_no_template() -> None:
    (made,) = catalog("prompt,request_id,sku\na red kettle,k-1,K\n", template=None)
    assert (made.request.prompt, made.request.request_id) == ("a red kettle", "k-1")
    assert made.request.metadata == {"sku": "K"}


def test_csv_line_numbers_count_physical_lines_of_quoted_cells() -> None:
    text = 'name,category,background\n"two\nlines",c,b\nx,c,b,extra\n'
    assert error_of(catalog, text) == "cat.csv:4: has 4 fields, the header has 3"


@pytest.mark.parametrize(
    ("text", "template", "message"),
    [
        ("name,category\nx,y\n", TEMPLATE, "cat.csv:1: template column(s) background not in"),
        ("name,name\nx,y\n", "{name}", "cat.csv:1: column 'name' appears twice"),
        ("name,metadata\nx,y\n", "{name}", "cat.csv:1: column 'metadata' is reserved"),
        ("sku\nx\n", None, "cat.csv:1: no 'prompt' column; give one or pass --template"),
        ("prompt,name\nx,y\n", "{name}", "has a 'prompt' column and --template"),
        ("name,width\nchair,wide\n", "{name}", "cat.csv:2: field 'width': expected an integer"),
        ("name,deadline\nchair,soon\n", "{name}", "cat.csv:2: field 'deadline'"),
        ("name\n", "{name}", "cat.csv: no requests (only a header row)"),
        ("", "{name}", "cat.csv: no header row"),
    ],
)
def test_csv_errors_name_the_line(text: str, template: str | None, message: str) -> None:
    assert message in error_of(catalog, text, template)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("photo of {}", "placeholder {} is not a column name"),
        ("photo of {name.upper}", "placeholder {name.upper} is not a column name"),
        ("photo of {name", "--template: "),
        ("no placeholder", "uses no column"),
    ],
)
def test_bad_templates(template: str, message: str) -> None:
    assert message in error_of(template_columns, template)


def test_template_columns_in_order() -> None:
    assert template_columns(TEMPLATE) == ["name", "category", "background"]


# -- validation of the whole batch ------------------------------------------------------------


def test_check_all_reports_every_invalid_request_and_duplicate_ids_with_lines() -> None:
    made = jsonl(
        '{"request_id": "a", "prompt": "ok"}\n'
        '{"request_id": "b", "prompt": "ok", "width": 500}\n'
        '{"request_id": "a", "prompt": "ok"}\n'
        '{"prompt": "ok", "scheduler": "plms"}\n'
        '{"prompt": "ok", "deadline": "2020-01-01T00:00:00Z"}\n'
    )
    errors = [
        str(e)
        for e in check_all(made, ValidationBounds(), models=None, schedulers={"ddim"}, now=NOW)
    ]
    assert errors[0] == "in.jsonl:2: width=500 is invalid: a multiple of 8 in [64, 2048]"
    assert errors[1] == "in.jsonl:3: request_id 'a' repeats in.jsonl:1"
    assert errors[2].startswith("in.jsonl:4: scheduler='plms' is invalid: one of ddim")
    assert errors[3].startswith("in.jsonl:5: deadline=")
    assert len(errors) == 4


def test_check_all_passes_a_good_batch() -> None:
    made = catalog(CATALOG)
    assert check_all(made, ValidationBounds(), models={"default"}, schedulers=None, now=NOW) == []


# -- every field survives a JSONL line --------------------------------------------------------


def as_json_line(request: GenerationRequest) -> str:
    record = request.to_record()
    for name in ("deadline", "created_at"):
        if record[name] is not None:
            record[name] = record[name].isoformat()
    return json.dumps(record)


@given(requests())
def test_any_request_written_as_a_jsonl_line_reads_back_equal(request: GenerationRequest) -> None:
    (made,) = jsonl(as_json_line(request) + "\n")
    assert made.request == request.replace(created_at=request.created_at or NOW)


def test_check_all_without_field_validation_still_checks_the_schema() -> None:
    made = jsonl('{"prompt": "ok", "width": 100}\n{"prompt": "ok", "width": 4294967296}\n')
    errors = check_all(
        made, ValidationBounds(), models=None, schedulers=None, now=NOW, validate_fields=False
    )
    assert [e.where for e in errors] == ["in.jsonl:2"]
    assert "width" in str(errors[0])
