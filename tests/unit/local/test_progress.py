"""A long preparation step announces itself, keeps saying it is alive, then says how long it
took (or that it failed)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from streamgen.local.progress import building


class SeenHeartbeats(logging.Handler):
    def __init__(self, wanted: int) -> None:
        super().__init__()
        self.count = 0
        self.wanted = wanted
        self.enough = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "still" in record.getMessage():
            self.count += 1
            if self.count >= self.wanted:
                self.enough.set()


@pytest.fixture
def heartbeats() -> Iterator[SeenHeartbeats]:
    handler = SeenHeartbeats(wanted=2)
    logger = logging.getLogger("streamgen.local.progress")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


def test_start_heartbeats_and_duration(
    heartbeats: SeenHeartbeats, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.INFO, logger="streamgen.local.progress"),
        building("MinIO", "building with go install", every_s=0.01),
    ):
        assert heartbeats.enough.wait(60), "no heartbeat while the step ran"
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "MinIO: building with go install ..."
    assert messages[1].startswith("MinIO: still building with go install (")
    assert messages[-1].startswith("MinIO: done in ")


def test_a_failure_says_so_and_raises(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.INFO, logger="streamgen.local.progress"),
        pytest.raises(RuntimeError),
        building("Kafka jars", "resolving with mvn"),
    ):
        raise RuntimeError("mvn: no network")
    assert caplog.records[-1].getMessage().startswith("Kafka jars: failed after ")
    assert caplog.records[-1].levelno == logging.ERROR
