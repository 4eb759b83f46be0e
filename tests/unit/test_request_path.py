"""The measure of a request's path from poll to commit (tools/request_path.py, issue 24).

First the measure itself, on a synthetic run whose answer is known: it must count what runs
inside the window, on any thread, and nothing before or after it. Then the worker's real path.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.types import shape_of
from streamgen.store.uri import parse_store_url
from streamgen.worker.backoff import Backoff
from tests.support.memory_kafka import MemoryConsumer
from tools import request_path
from tools.request_path import RecordWindow, RequestPath, measure

TOPIC = "t"


def _polled(window: Any) -> Any:
    consumer = MemoryConsumer(TOPIC)
    consumer.append(b"a", b"0")
    consumer.append(b"b", b"1")
    watched = window(consumer).configured({})
    watched.subscribe([TOPIC])
    return watched


def synthetic(engine: str, window: Any) -> None:
    """Before the window, inside it (this thread and another) and after it: one file each."""
    watched = _polled(window)
    assert [m.offset() for m in watched.consume(1)] == [0]  # not the record: still shut
    Backoff(0.1, 1.0)  # worker/backoff.py: before the window
    assert [m.offset() for m in watched.consume(1)] == [1]  # the record: open
    shape_of(GenerationRequest(request_id="x", prompt="p"), "euler")  # engine/types.py
    other = threading.Thread(target=parse_store_url, args=("file:///tmp/x",))  # store/uri.py
    other.start()
    other.join()
    watched.commit(offsets=[TopicPartition(TOPIC, 0, 1)])  # covers offset 0 only: still open
    Backoff(0.1, 1.0)  # worker/backoff.py: inside the window now
    watched.commit(offsets=[TopicPartition(TOPIC, 0, 2)])  # covers offset 1: shut
    parse_store_url("file:///tmp/y")  # after the window: changes nothing


def test_the_measure_counts_what_runs_inside_the_window_on_any_thread() -> None:
    path = measure("noop", drive=synthetic)
    files = [name for name, _ in path.files]
    # The request's dataclass __init__ is generated code: it counts for contracts/request.py.
    assert files == [
        "streamgen/contracts/request.py",
        "streamgen/engine/types.py",
        "streamgen/store/uri.py",
        "streamgen/worker/backoff.py",
    ]
    threads = dict(path.files)
    assert threads["streamgen/engine/types.py"] == "MainThread"
    assert threads["streamgen/store/uri.py"] != "MainThread"


def test_a_window_that_never_opens_is_an_error_not_an_empty_path() -> None:
    def never_polled(engine: str, window: Any) -> None:
        _polled(window).consume(1)  # offset 0 only

    with pytest.raises(RuntimeError, match="never opened"):
        measure("noop", drive=never_polled)


def test_a_window_that_no_commit_closes_is_an_error() -> None:
    def never_committed(engine: str, window: Any) -> None:
        _polled(window).consume(2)

    with pytest.raises(RuntimeError, match="no commit covered offset 1"):
        measure("noop", drive=never_committed)


def test_an_unknown_engine_is_named() -> None:
    with pytest.raises(ValueError, match="engine='gpu': one of noop, diffusion"):
        measure("gpu", drive=synthetic)


def test_rooms_and_telemetry_are_read_from_the_paths() -> None:
    path = RequestPath(
        "noop",
        (
            ("streamgen/worker/loop.py", "MainThread"),
            ("streamgen/telemetry/metrics.py", "MainThread"),
            ("streamgen/engine/families/base.py", "streamgen-gpu"),
            ("streamgen/errors.py", "MainThread"),
        ),
    )
    assert path.count == 4
    assert path.telemetry == ["streamgen/telemetry/metrics.py"]
    assert path.by_room() == {
        "worker": ["streamgen/worker/loop.py"],
        "telemetry": ["streamgen/telemetry/metrics.py"],
        "engine": ["streamgen/engine/families/base.py"],
        "errors": ["streamgen/errors.py"],
    }
    text = request_path.render([path])
    assert "4 files, 1 of them telemetry" in text
    assert "engine (1): families/base.py" in text
    assert "errors (1): errors.py" in text


def test_the_workers_path_runs_from_the_poll_through_the_offsets_to_the_commit() -> None:
    path = measure("noop")
    files = [name for name, _ in path.files]
    assert files[:2] == ["streamgen/worker/clients.py", "streamgen/worker/loop.py"]  # the poll
    for stage in ("intake", "work_queue", "generation", "storage", "outputs", "offsets", "commits"):
        assert f"streamgen/worker/{stage}.py" in files
    assert "streamgen/store/file_store.py" in files  # the image stored before the commit
    threads = {thread for _, thread in path.files}
    assert threads == {"MainThread", "streamgen-gpu", "streamgen-out"}
    assert not any(name.startswith("streamgen/engine/stages") for name in files)  # no diffusion


def test_records_that_are_not_the_measured_one_pass_through_unwatched() -> None:
    trace = request_path.FileTrace()
    consumer = MemoryConsumer(TOPIC)
    consumer.append(b"a", b"0")
    window = RecordWindow(consumer, trace, partition=0, offset=5)
    window.subscribe([TOPIC])
    assert len(window.consume(10)) == 1
    window.commit(offsets=[TopicPartition(TOPIC, 0, 1)], asynchronous=False)
    assert consumer.committed_offsets == {0: 1}  # delegated to the consumer
    assert not trace.is_open
