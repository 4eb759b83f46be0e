"""Progress notes (worker.progress): the step cadence, the never-blocking reporter, and the
publisher thread's best-effort delivery, each counted."""

from __future__ import annotations

import itertools
import math
import queue
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from streamgen.contracts.progress import GenerationProgress, progress_codec
from streamgen.settings import KafkaSettings
from streamgen.telemetry.progress_metrics import ProgressMetrics
from streamgen.worker.progress import NO_PROGRESS, ProgressNote, ProgressReporter, StepCadence
from streamgen.worker.progress_publisher import ProgressPublisher

# -- StepCadence: pure ---------------------------------------------------------------------

gaps = st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=60)
intervals = st.floats(min_value=0.0, max_value=3.0)


def reported(interval: float, step_gaps: list[float]) -> tuple[list[int], list[float]]:
    """The steps reported for steps 1..len(step_gaps), each ``gap`` seconds after the last."""
    cadence, now, times, steps = StepCadence(interval), 0.0, [], []
    for step, gap in enumerate(step_gaps, start=1):
        now += gap
        times.append(now)
        if cadence.due(step, len(step_gaps), now):
            steps.append(step)
    return steps, times


@given(intervals, gaps)
def test_the_first_and_the_last_step_are_always_reported(interval: float, g: list[float]) -> None:
    steps, _ = reported(interval, g)
    assert steps[0] == 1 and steps[-1] == len(g)
    assert steps == sorted(set(steps))


@given(intervals, gaps)
def test_between_them_reports_are_interval_apart(interval: float, g: list[float]) -> None:
    steps, times = reported(interval, g)
    inner = steps[:-1]  # the last step is reported however soon after the one before
    for a, b in itertools.pairwise(inner):
        assert times[b - 1] - times[a - 1] >= interval


@given(intervals, gaps)
def test_no_step_that_was_due_goes_unreported(interval: float, g: list[float]) -> None:
    steps, times = reported(interval, g)
    last = -math.inf
    for step, at in enumerate(times, start=1):
        if at - last >= interval:
            assert step in steps
        if step in steps:
            last = at


def test_interval_zero_reports_every_step() -> None:
    assert reported(0.0, [0.0] * 7)[0] == [1, 2, 3, 4, 5, 6, 7]


def test_a_long_interval_reports_only_the_ends() -> None:
    assert reported(60.0, [0.1] * 30)[0] == [1, 30]


# -- ProgressReporter -----------------------------------------------------------------------


def test_off_reports_nothing_and_gives_the_engine_no_observer() -> None:
    assert not NO_PROGRESS.on
    assert NO_PROGRESS.step_observer() is None
    NO_PROGRESS.picked_up("a")  # does nothing, raises nothing
    NO_PROGRESS.batch_started(["a"])
    NO_PROGRESS.stored("a")


def test_notes_in_the_order_reported_with_the_cadence_applied() -> None:
    notes: queue.Queue[ProgressNote] = queue.Queue()
    clock = iter([1.0, 2.0, 3.0, 3.1, 3.2, 3.3, 9.0])
    reporter = ProgressReporter(notes, interval_s=1.0, clock=lambda: next(clock))
    reporter.picked_up("a")
    reporter.batch_started(["a", "b"])
    observe = reporter.step_observer()
    assert observe is not None
    for step in (1, 2, 3, 4):  # at 3.0, 3.1, 3.2, 3.3: the first and the last go out
        observe(["a", "b"], step, 4)
    reporter.stored("a")
    got = [(n.stage, tuple(n.request_ids), n.step, n.steps, n.at) for n in drain(notes)]
    assert got == [
        ("PICKED_UP", ("a",), 0, 0, 1.0),
        ("BATCH_STARTED", ("a", "b"), 0, 0, 2.0),
        ("DENOISING", ("a", "b"), 1, 4, 3.0),
        ("DENOISING", ("a", "b"), 4, 4, 3.3),
        ("STORED", ("a",), 0, 0, 9.0),
    ]


def test_a_full_queue_drops_the_note_counts_each_request_and_never_blocks() -> None:
    dropped: list[str] = []
    notes: queue.Queue[ProgressNote] = queue.Queue(1)
    reporter = ProgressReporter(notes, on_dropped=dropped.append)
    reporter.picked_up("a")
    reporter.batch_started(["a", "b", "c"])  # the queue is full: dropped at once
    assert dropped == ["queue_full"] * 3
    assert [n.stage for n in drain(notes)] == ["PICKED_UP"]


def drain(notes: queue.Queue[ProgressNote]) -> list[ProgressNote]:
    out = []
    while not notes.empty():
        out.append(notes.get_nowait())
    return out


# -- ProgressPublisher ----------------------------------------------------------------------


class RecordingProducer:
    """A producer whose deliveries the test decides: ``outcome(value)`` is None (acknowledged),
    an error (not delivered), or raises as ``produce`` would."""

    def __init__(self, outcome: Callable[[bytes], Any] = lambda value: None) -> None:
        self.outcome = outcome
        self.produced: list[tuple[str, bytes, bytes]] = []
        self._reports: list[tuple[Callable[[Any, Any], None], Any]] = []
        self.unsent = 0

    def produce(
        self, topic: str, value: bytes, key: bytes, *, on_delivery: Callable[[Any, Any], None]
    ) -> None:
        error = self.outcome(value)
        self.produced.append((topic, key, value))
        self._reports.append((on_delivery, error))

    def poll(self, timeout: float) -> int:
        reports, self._reports = self._reports, []
        for report, error in reports:
            report(error, None)
        return len(reports)

    def flush(self, timeout: float) -> int:
        self.poll(0)
        return self.unsent


CODEC = progress_codec(KafkaSettings(), "progress")


def publish(
    producer: RecordingProducer, notes: list[ProgressNote]
) -> tuple[list[GenerationProgress], dict[str, float]]:
    registry = CollectorRegistry()
    queued: queue.Queue[ProgressNote] = queue.Queue()
    for note in notes:
        queued.put(note)
    publisher = ProgressPublisher(
        producer,
        topic="progress",
        worker_id="w1",
        encode=CODEC.encode,
        metrics=ProgressMetrics(registry),
        notes=queued,
    )
    publisher.start()
    publisher.close()
    assert not publisher.is_alive()
    counts = {
        "published": registry.get_sample_value("streamgen_progress_events_published_total") or 0,
        **{
            reason: registry.get_sample_value(
                "streamgen_progress_events_dropped_total", {"reason": reason}
            )
            or 0
            for reason in ("producer_full", "broker", "error", "unsent")
        },
    }
    return [CODEC.decode(value) for _, _, value in producer.produced], counts


def test_one_event_per_request_keyed_by_its_id_in_note_order() -> None:
    producer = RecordingProducer()
    events, counts = publish(
        producer,
        [
            ProgressNote("BATCH_STARTED", ("a", "b"), 10.0),
            ProgressNote("DENOISING", ("a", "b"), 11.5, 3, 8),
        ],
    )
    assert [(e.request_id, e.stage, e.step, e.steps) for e in events] == [
        ("a", "BATCH_STARTED", 0, 0),
        ("b", "BATCH_STARTED", 0, 0),
        ("a", "DENOISING", 3, 8),
        ("b", "DENOISING", 3, 8),
    ]
    assert [key for _, key, _ in producer.produced] == [b"a", b"b", b"a", b"b"]
    assert {e.worker_id for e in events} == {"w1"}
    assert events[2].timestamp.timestamp() == 11.5
    assert counts["published"] == 4


def test_every_failure_is_a_counted_drop_and_the_thread_goes_on() -> None:
    def outcome(value: bytes) -> Any:
        event = CODEC.decode(value)
        if event.request_id == "full":
            raise BufferError("Local: Queue full")
        if event.request_id == "broken":
            raise RuntimeError("producer broke")
        return "delivery timed out" if event.request_id == "late" else None

    producer = RecordingProducer(outcome)
    producer.unsent = 2
    ids = ("full", "broken", "late", "fine")
    _, counts = publish(producer, [ProgressNote("STORED", (i,), 1.0) for i in ids])
    assert counts == {"published": 1, "producer_full": 1, "error": 1, "broker": 1, "unsent": 2}


def test_an_event_that_does_not_fit_its_schema_is_dropped_not_raised() -> None:
    producer = RecordingProducer()
    _, counts = publish(producer, [ProgressNote("DENOISING", ("a",), 1.0, 2**40, 3)])
    assert counts["error"] == 1 and counts["published"] == 0


@pytest.mark.parametrize("stage", ["PICKED_UP", "BATCH_STARTED", "DENOISING", "STORED"])
def test_the_progress_contract_round_trips(stage: Any) -> None:
    producer = RecordingProducer()
    (event,), _ = publish(producer, [ProgressNote(stage, ("r-1",), 1_700_000_000.25, 2, 5)])
    assert (event.request_id, event.stage, event.step, event.steps) == ("r-1", stage, 2, 5)
