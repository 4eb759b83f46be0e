"""OutcomeSink: a ticket becomes durable only after every record it produced is acknowledged."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from streamgen.contracts import dead_letter as dl
from streamgen.contracts.formats import output_format
from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.result import GenerationResult, StoredImage, WorkerIdentity
from streamgen.errors import DecodeError, InvalidRequest
from streamgen.worker.events import OutcomeSummary
from streamgen.worker.offsets import Ticket
from streamgen.worker.outputs import OutcomeSink
from streamgen.worker.work_item import SourceRecord, WorkItem
from tests.support.events import RecordedEvents


class RecordingPublisher:
    """Keeps every send; the test decides when the broker acknowledges."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, Any, dict[str, str], Callable[[], None]]] = []

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: Any,
        headers: Sequence[tuple[str, bytes]],
        on_ack: Callable[[], None],
        on_rejected: Callable[[str], None] | None = None,
    ) -> None:
        self.sent.append((topic, key, value, dl.header_map(headers), on_ack))


TICKET = Ticket("requests", 2, 41, 7)
RECORD = SourceRecord("requests", 2, 41, b"r-1", b"original bytes", (("traceparent", b"00-x"),), 5)


def make_sink() -> tuple[OutcomeSink, RecordingPublisher, list[tuple[Ticket, OutcomeSummary]]]:
    publisher, events = RecordingPublisher(), RecordedEvents()
    sink = OutcomeSink(
        publisher,  # type: ignore[arg-type]
        results_topic="results",
        dead_letter_topic="dead",
        group_id="g",
        identity=WorkerIdentity("w-1", "host"),
        encode_result=lambda result: result,  # type: ignore[arg-type,return-value]
        events=events,
    )
    return sink, publisher, events.durables


def test_dead_letter_and_failed_result_are_joined() -> None:
    sink, publisher, durable = make_sink()
    request = GenerationRequest(request_id="r-1", prompt="p", model="tiny")
    sink.failed(TICKET, RECORD, InvalidRequest("steps", 0, "1..150"), request=request)
    (dead_topic, dead_key, dead_value, headers, ack_dead), (topic, key, result, _, ack_result) = (
        publisher.sent
    )
    assert (dead_topic, dead_key, dead_value) == ("dead", b"r-1", b"original bytes")
    assert headers["traceparent"] == "00-x", "original headers are kept"
    assert headers[dl.H_STAGE] == "validate"
    assert headers[dl.H_CODE] == "INVALID_REQUEST"
    assert headers[dl.H_OFFSET] == "41" and headers[dl.H_PARTITION] == "2"
    assert (topic, key) == ("results", b"r-1")
    assert isinstance(result, GenerationResult) and result.status == "FAILED"
    assert result.error is not None and "steps=0" in result.error.message
    ack_dead()
    assert durable == [], "durable before the FAILED result was acknowledged"
    ack_result()
    assert [t for t, _ in durable] == [TICKET]
    assert durable[0][1].dead_lettered and durable[0][1].error_code == "INVALID_REQUEST"


def test_a_record_without_request_id_is_a_dead_letter_alone() -> None:
    sink, publisher, durable = make_sink()
    sink.failed(TICKET, RECORD, DecodeError("garbage"), request=None)
    assert [s[0] for s in publisher.sent] == ["dead"]
    publisher.sent[0][4]()
    assert len(durable) == 1 and durable[0][1].request_id == ""


def test_success_is_durable_when_its_result_is_acknowledged() -> None:
    sink, publisher, durable = make_sink()
    request = GenerationRequest(request_id="r-1", prompt="p", model="tiny", metadata={"sku": "1"})
    item = WorkItem(TICKET, RECORD, request, received_at=100.0)
    image = StoredImage(0, "s3://b/r-1/0.png", "b", "r-1/0.png", "image/png", "ab" * 32, 10)
    sink.succeeded(
        item,
        seed=9,
        images=[image],
        output=output_format("webp", 80),
        started_at=101.0,
        gpu_seconds=0.5,
        batch_size=4,
    )
    [(topic, key, result, _, ack)] = publisher.sent
    assert (topic, key) == ("results", b"r-1")
    assert result.status == "SUCCEEDED" and result.seed == 9 and result.images == (image,)
    assert (result.output_format, result.output_quality) == ("webp", 80)
    assert result.metadata == {"sku": "1"} and result.timings.batch_size == 4
    assert result.timings.queue_wait_seconds == 1.0
    assert durable == []
    ack()
    assert durable[0][1].status == "SUCCEEDED"
