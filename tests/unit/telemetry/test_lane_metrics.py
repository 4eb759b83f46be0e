"""streamgen_lane_requests_total{lane,outcome}: counted by the worker's hooks where requests are
counted, each record in the lane of its topic."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streamgen.configuration import load_settings
from streamgen.contracts.request import GenerationRequest
from streamgen.errors import DecodeError
from streamgen.telemetry.lane_metrics import LaneMetrics
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker.events import OutcomeSummary
from streamgen.worker.offsets import Ticket
from streamgen.worker.work_item import SourceRecord, WorkItem

LANES = "interactive=0.1,default=0.3,bulk=0.1"


def item(topic: str, request_id: str) -> WorkItem:
    record = SourceRecord(topic, 0, 0, None, b"", (), 0)
    request = GenerationRequest(request_id=request_id, prompt="p", model="default")
    return WorkItem(Ticket(topic, 0, 0, 1), record, request, received_at=0.0)


def count(registry: CollectorRegistry, lane: str, outcome: str) -> float | None:
    labels = {"lane": lane, "outcome": outcome}
    return registry.get_sample_value("streamgen_lane_requests_total", labels)


def test_requests_are_counted_in_the_lane_of_their_topic() -> None:
    settings = load_settings({"topics.lanes": LANES}, env={})
    hooks = WorkerHooks.from_settings(settings, worker_id="w", host="h")
    r = hooks.metrics.registry
    hooks.admitted(item("streamgen.requests.interactive", "a"))
    hooks.admitted(item("streamgen.requests.bulk", "b"))
    hooks.rejected(None, DecodeError("not Avro"), topic="streamgen.requests.bulk")
    hooks.durable(
        OutcomeSummary("SUCCEEDED", "a", "default", topic="streamgen.requests.interactive")
    )
    hooks.durable(OutcomeSummary("FAILED", "b", "default", topic="streamgen.requests.bulk"))
    assert count(r, "interactive", "consumed") == 1
    assert count(r, "interactive", "succeeded") == 1
    assert count(r, "bulk", "consumed") == 2
    assert count(r, "bulk", "failed") == 1
    assert count(r, "default", "consumed") == 0  # present at 0: rate() sees the first one


def test_without_lanes_every_topic_is_the_default_lane() -> None:
    registry = CollectorRegistry()
    metrics = LaneMetrics(registry)
    metrics.count("any.topic", "consumed")
    assert count(registry, "default", "consumed") == 1
    assert count(registry, "any.topic", "consumed") is None
