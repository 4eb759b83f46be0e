"""A request without a model asks for "default", the first configured model: the engine's
shapes (and so its batches, limits and log lines) use that model's own name."""

from __future__ import annotations

import logging

import pytest

from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.types import Shape
from tests.unit.engine.conftest import request


def test_default_is_shaped_under_the_first_models_name(engine: DiffusionEngine) -> None:
    by_alias = engine.shape_of(request("a", model="default"))
    by_name = engine.shape_of(request("b", model="tiny"))
    assert by_alias.model == "tiny"
    assert by_alias == by_name  # one shape: they share batches


def test_the_batch_limit_log_line_names_the_model(
    engine: DiffusionEngine, caplog: pytest.LogCaptureFixture
) -> None:
    shape = engine.shape_of(request("a", model="default", width=72, height=72))
    with caplog.at_level(logging.INFO, logger="streamgen.engine"):
        engine.max_batch_size(shape)
    assert "model='tiny'" in caplog.text
    assert "'default'" not in caplog.text


def test_warm_up_shapes_named_default_are_warmed_under_the_models_name(
    engine: DiffusionEngine,
) -> None:
    took = engine.warm_up([Shape("default", "txt2img", 64, 64, 2, "euler")])
    assert [shape.model for shape in took] == ["tiny"]
