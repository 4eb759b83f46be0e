"""Where the worker reports what happens: Prometheus metrics and OpenTelemetry spans.

The loop, the GPU thread and the rebalance handler call these methods at their events; the
mapping to series lives in :mod:`streamgen.telemetry.metrics`, the spans in
:mod:`streamgen.telemetry.tracing`. Kept out of the loop so the loop stays short.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from opentelemetry.trace import Span

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.types import GenerationOutcome
from streamgen.errors import ConfigError, StreamgenError
from streamgen.lanes import topic_lanes
from streamgen.settings import Settings
from streamgen.telemetry.backlog import pixel_steps
from streamgen.telemetry.lane_metrics import LaneMetrics
from streamgen.telemetry.metrics import Metrics, RebalanceKind
from streamgen.telemetry.tenant_metrics import TenantMetrics
from streamgen.telemetry.tracing import KafkaRecordLike, WorkerTracer
from streamgen.tenants import tenant_names

__all__ = ["WorkerHooks"]

log = logging.getLogger(__name__)

# The worker's values as far as telemetry reads them. Telemetry sits below the worker and
# never imports it: these are satisfied by streamgen.worker.work_item.WorkItem,
# streamgen.worker.outputs.OutcomeSummary and streamgen.worker.offsets.TopicPartitionKey.
TopicPartitionKey = tuple[str, int]


class SourceRecord(Protocol):
    @property
    def topic(self) -> str: ...


class WorkItem(Protocol):
    request: GenerationRequest
    received_at: float  # wall clock, seconds
    span: Any

    @property
    def record(self) -> SourceRecord: ...


class OutcomeSummary(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def request_id(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def error_code(self) -> str: ...
    @property
    def stage(self) -> str: ...
    @property
    def dead_lettered(self) -> bool: ...
    @property
    def topic(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    @property
    def queue_wait_s(self) -> float | None: ...
    @property
    def e2e_s(self) -> float | None: ...
    @property
    def span(self) -> Any: ...


def _pixel_steps(item: WorkItem) -> int:
    r = item.request
    return pixel_steps(r.steps, r.width, r.height, r.num_images)


class WorkerHooks:
    def __init__(
        self,
        metrics: Metrics,
        *,
        worker_id: str,
        host: str,
        group_id: str,
        device: str = "",
        metrics_port: int = 0,
        metrics_address: str = "0.0.0.0",
        tracer: WorkerTracer | None = None,
        lanes: Mapping[str, str] | None = None,
        tenants: Collection[str] = (),
    ) -> None:
        """``lanes``: each priority lane's topic -> its name (streamgen_lane_requests_total);
        ``tenants``: the configured tenants' names (streamgen_tenant_*)."""
        self.metrics = metrics
        self.lanes = LaneMetrics(metrics.registry, lanes)
        self.tenants = TenantMetrics(metrics.registry, tenants)
        self.tracer = tracer or WorkerTracer(group_id=group_id, client_id=worker_id)
        self.worker_id = worker_id
        self.host = host
        self.group_id = group_id
        self.device = device
        self._metrics_port = metrics_port
        self._metrics_address = metrics_address
        self.server: Any = None

    @classmethod
    def from_settings(cls, settings: Settings, *, worker_id: str, host: str) -> WorkerHooks:
        models = set(settings.engine.models) | {"default"}
        return cls(
            Metrics(models=models),
            worker_id=worker_id,
            host=host,
            group_id=settings.worker.group_id,
            device=settings.engine.device,
            metrics_port=settings.worker.metrics_port,
            metrics_address=settings.worker.metrics_address,
            lanes=topic_lanes(settings.topics),
            tenants=tenant_names(settings.worker),
        )

    def serve(self, ready: Callable[[], tuple[bool, str]] | None = None) -> None:
        """Start ``/metrics`` and ``/ready`` (once): before the warm-up, so that the probe
        answers 503 while the worker compiles instead of refusing connections. ``ready`` is
        the worker lifecycle's answer (``Lifecycle.readiness``: warmed up, in the group, not
        stopping); without it ``/ready`` is not served."""
        if self._metrics_port and self.server is None:
            try:
                self.server = self.metrics.serve(
                    self._metrics_port, addr=self._metrics_address, ready=ready
                )
            except OSError as exc:  # port taken, address not on this host
                raise ConfigError(
                    "worker.metrics_port",
                    f"cannot serve /metrics on {self._metrics_address}:{self._metrics_port}: "
                    f"{exc.strerror or exc}. Pick a free port (0 turns it off) or fix "
                    "worker.metrics_address.",
                ) from None
            log.info(
                "metrics on http://%s:%d/metrics, readiness on /ready",
                self._metrics_address,
                self.server.server_port,
            )

    def warmed_up(self, seconds: float) -> None:
        self.metrics.warmed_up(seconds)

    def started(self) -> None:
        self.metrics.set_worker_info(
            worker_id=self.worker_id, host=self.host, device=self.device, group_id=self.group_id
        )

    def stopped(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None

    # -- consumer loop ----------------------------------------------------------------------
    def received(self, record: KafkaRecordLike) -> Span:
        """The record's ``process`` span, a child of the producer's trace context."""
        return self.tracer.record_received(record)

    def stage(self, name: str, span: Span | None) -> AbstractContextManager[Span]:
        return self.tracer.stage(name, span)

    def abandoned(self, span: Span | None, error: BaseException) -> None:
        """The record will be read again (transient failure): its span ends here."""
        self.tracer.finished(span, error)

    def admitted(self, item: WorkItem) -> None:
        self.metrics.request_consumed(item.request.model, _pixel_steps(item))
        self.lanes.count(item.record.topic, "consumed")
        self.tenants.count(item.request.tenant, "consumed")

    def rejected(
        self, request: GenerationRequest | None, error: StreamgenError, *, topic: str = ""
    ) -> None:
        self.metrics.request_consumed(request.model if request else "")
        self.lanes.count(topic, "consumed")
        self.tenants.count(request.tenant if request else "", "consumed")

    def durable(self, summary: OutcomeSummary) -> None:
        self.tracer.finished(summary.span, summary.error_code or None)
        if summary.dead_lettered:
            self.metrics.dead_lettered(summary.model, summary.error_code, summary.stage)
        if summary.request_id:
            succeeded = summary.status == "SUCCEEDED"
            self.lanes.count(summary.topic, "succeeded" if succeeded else "failed")
            self.tenants.count(summary.tenant, "succeeded" if succeeded else "failed")
            self.metrics.request_finished(
                summary.model,
                "SUCCEEDED" if summary.status == "SUCCEEDED" else "FAILED",
                error_code=summary.error_code,
                stage=summary.stage,
                queue_wait_s=summary.queue_wait_s,
                e2e_s=summary.e2e_s,
            )
        if summary.status == "CANCELLED":  # its result is FAILED, counted just above too
            self.metrics.request_cancelled(summary.stage)

    def cancel_record_skipped(self) -> None:
        """A malformed record on the cancels topic was logged and skipped."""
        self.metrics.cancel_record_skipped()

    def in_flight(self, n: int) -> None:
        self.metrics.set_in_flight(n)

    def deferred(self, per_tenant: Mapping[str, int]) -> None:
        """Requests set aside by their tenant's cap (worker.tenant_max_in_flight), per tenant."""
        self.tenants.set_deferred(per_tenant)

    def paused(self, partitions: int) -> None:
        self.metrics.set_paused_partitions(partitions)

    def partition_stall(self, tp: TopicPartitionKey, seconds: float | None) -> None:
        self.metrics.set_partition_stall(tp[0], tp[1], seconds)

    def committed(
        self, points: dict[TopicPartitionKey, int], log_ends: dict[TopicPartitionKey, int]
    ) -> None:
        self.metrics.committed(len(points))
        for (topic, partition), offset in points.items():
            if (topic, partition) in log_ends:
                self.metrics.set_commit_lag(topic, partition, log_ends[(topic, partition)], offset)

    def rebalance(
        self, kind: RebalanceKind, changed: Iterable[TopicPartitionKey], assigned: int
    ) -> None:
        self.metrics.rebalanced(kind, assigned, list(changed))

    # -- GPU thread and outputs --------------------------------------------------------------
    @contextmanager
    def generating(self, items: Sequence[WorkItem], started_at: float) -> Iterator[None]:
        """Around one engine call: each request's batch wait, and a batch span linked to all."""
        for item in items:
            self.tracer.batch_wait(item.span, item.received_at, started_at)
        with self.tracer.generate(
            [i.span for i in items],
            model=items[0].request.model,
            **{"streamgen.batch.size": len(items)},
        ):
            yield

    def batch(
        self, items: Sequence[WorkItem], outcomes: Sequence[GenerationOutcome], gpu_seconds: float
    ) -> None:
        made = [0 if o.error is not None else len(o.images) for o in outcomes]
        costs = [_pixel_steps(i) for i in items]
        self.metrics.observe_batch(
            items[0].request.model, len(items), gpu_seconds, sum(made), sum(costs)
        )
        self.tenants.batch([i.request.tenant for i in items], costs, made, gpu_seconds)

    def store_retry(self) -> None:
        self.metrics.store_retry()

    def produce_retry(self, _topic: str) -> None:
        self.metrics.produce_retry()
