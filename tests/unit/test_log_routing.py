"""Known-harmless third-party lines are shown only at DEBUG; every other warning stays."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from streamgen.log_routing import demote_known_noise, librdkafka_logger

FALLBACK = "`CLIPImageProcessor` requires torchvision (not installed); falling back to ..."
COORDINATOR = (
    "GETPID [rdkafka#producer-1] [thrd:main]: Failed to acquire idempotence PID from broker "
    "127.0.0.1:9092/1: Broker: Coordinator load in progress: retrying"
)


@pytest.fixture
def streamgen_level() -> Iterator[None]:
    logger = logging.getLogger("streamgen")
    before = logger.level
    yield
    logger.setLevel(before)


def test_known_noise_is_dropped_above_debug_and_other_warnings_stay(
    caplog: pytest.LogCaptureFixture, streamgen_level: None
) -> None:
    demote_known_noise()
    logging.getLogger("streamgen").setLevel(logging.INFO)
    transformers = logging.getLogger("transformers.utils.import_utils")
    with caplog.at_level(logging.INFO):
        transformers.warning(FALLBACK)
        transformers.warning("something the user must act on")
        librdkafka_logger().warning(COORDINATOR)
        librdkafka_logger().warning("FAIL [rdkafka#producer-1]: Connection refused")
    assert [r.getMessage() for r in caplog.records] == [
        "something the user must act on",
        "FAIL [rdkafka#producer-1]: Connection refused",
    ]


def test_known_noise_shows_at_debug_as_debug(
    caplog: pytest.LogCaptureFixture, streamgen_level: None
) -> None:
    demote_known_noise()
    logging.getLogger("streamgen").setLevel(logging.DEBUG)
    with caplog.at_level(logging.DEBUG):
        librdkafka_logger().warning(COORDINATOR)
    [record] = caplog.records
    assert record.levelno == logging.DEBUG
