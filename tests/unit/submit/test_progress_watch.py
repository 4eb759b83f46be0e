"""What `submit --wait` prints for a progress event, and a watch with no progress topic."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from streamgen.contracts.progress import GenerationProgress, ProgressStage
from streamgen.settings import Settings, TopicSettings
from streamgen.submit.progress_watch import ProgressWatch, describe

AT = datetime(2026, 12, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("stage", "step", "line"),
    [
        ("PICKED_UP", 0, "r-1: picked up [w-1]"),
        ("BATCH_STARTED", 0, "r-1: batch started [w-1]"),
        ("DENOISING", 7, "r-1: denoising 7/30 [w-1]"),
        ("STORED", 0, "r-1: stored [w-1]"),
        ("OTHER", 0, "r-1: other [w-1]"),  # a stage a later schema adds, read as its default
    ],
)
def test_one_line_per_event(stage: ProgressStage, step: int, line: str) -> None:
    assert describe(GenerationProgress("r-1", stage, AT, "w-1", step, 30)) == line


def test_without_a_progress_topic_nothing_is_read_or_shown() -> None:
    shown: list[GenerationProgress] = []
    settings = replace(Settings(), topics=TopicSettings(progress=""))
    watch = ProgressWatch.of(settings, shown.append)
    watch.start_from_end(["r-1"])  # no broker is asked: there is nothing to follow
    assert not watch.is_alive()
    watch.close()
    assert shown == []
