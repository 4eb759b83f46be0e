"""Every Prometheus series streamgen exports, declared once, on an injectable registry.

Which worker event feeds which series (the worker calls the methods; nothing else writes):

=================================  ================================================================
worker event                       method → series
=================================  ================================================================
record decoded/validated, or       ``request_consumed(model, pixel_steps)`` →
rejected at intake                 ``streamgen_requests_consumed_total{model}``
engine returned a batch            ``observe_batch(model, size, gpu_seconds, images, pixel_steps)``
                                   → ``streamgen_batch_size``, ``streamgen_batch_gpu_seconds``,
                                   ``streamgen_images_generated_total{model}``
result acknowledged by the broker  ``request_finished(model, status, …)`` →
                                   ``streamgen_requests_succeeded_total{model}`` or
                                   ``streamgen_requests_failed_total{model,code,stage}``,
                                   ``streamgen_queue_wait_seconds``,
                                   ``streamgen_request_latency_seconds`` (created_at → result)
dead letter acknowledged           ``dead_lettered(model, code, stage)`` →
                                   ``streamgen_requests_dead_lettered_total{model,code,stage}``
cancelled request's result acked   ``request_cancelled(stage)`` →
                                   ``streamgen_requests_cancelled_total{stage}``
malformed cancel record skipped    ``cancel_record_skipped()`` →
                                   ``streamgen_cancel_records_skipped_total``
in-flight count changes            ``set_in_flight(n)`` → ``streamgen_in_flight_requests``
partitions paused / resumed        ``set_paused_partitions(n)`` → ``streamgen_paused_partitions``
partition stalled / moving again   ``set_partition_stall(topic, partition, seconds)`` →
                                   ``streamgen_partition_stalled_seconds{topic,partition}``
assign / revoke / lost             ``rebalanced(kind, assigned)`` →
                                   ``streamgen_rebalances_total{kind}``,
                                   ``streamgen_assigned_partitions``; revoked and lost
                                   partitions leave ``streamgen_commit_lag_messages``
offsets committed                  ``committed(n)`` → ``streamgen_commits_total``
watermarks read after a commit     ``set_commit_lag(topic, partition, log_end, committed)`` →
                                   ``streamgen_commit_lag_messages{topic,partition}`` and
                                   ``streamgen_backlog_gpu_seconds`` (lag x mean pixel-steps of
                                   recent requests / measured pixel-steps per GPU-second)
store / produce retried            ``store_retry()`` / ``produce_retry()`` →
                                   ``streamgen_store_retries_total`` /
                                   ``streamgen_produce_retries_total``
start-up                           ``set_worker_info(...)`` → ``streamgen_worker_info``
warm-up done (before joining)      ``warmed_up(seconds)`` → ``streamgen_warmup_seconds``
every scrape                       ``streamgen_gpu_memory_bytes``,
                                   ``streamgen_gpu_memory_total_bytes``,
                                   ``streamgen_gpu_utilization_ratio`` (see gpu_stats)
=================================  ================================================================

Images per second is ``rate(streamgen_images_generated_total[1m])``; GPU busy time from the
worker's side is ``rate(streamgen_batch_gpu_seconds_sum[1m])``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from streamgen.telemetry.backlog import WorkerBacklog
from streamgen.telemetry.exposition import series_names, serve_http
from streamgen.telemetry.gpu_stats import GpuCollector

__all__ = ["REBALANCE_KINDS", "Metrics", "RebalanceKind"]

RebalanceKind = Literal["assign", "revoke", "lost"]
REBALANCE_KINDS: tuple[RebalanceKind, ...] = ("assign", "revoke", "lost")
UNKNOWN_MODEL = "unknown"

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128)
GPU_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 120)
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)


class Metrics:
    """The worker's metrics. Pass a fresh ``CollectorRegistry`` in tests.

    ``models``: the logical model names the worker serves. A request naming any other model is
    counted as ``model="unknown"``, so a producer sending random model names cannot blow up the
    number of series.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        models: Iterable[str] | None = None,
        gpu: bool = True,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._models = frozenset(models) if models is not None else None
        r = self.registry

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, labels, registry=r)

        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            return Gauge(name, doc, labels, registry=r)

        def histogram(name: str, doc: str, buckets: tuple[float, ...], *labels: str) -> Histogram:
            return Histogram(name, doc, labels, buckets=buckets, registry=r)

        self.requests_consumed = counter(
            "streamgen_requests_consumed",
            "Records taken from the requests topic (decoded or rejected)",
            "model",
        )
        self.requests_succeeded = counter(
            "streamgen_requests_succeeded",
            "Requests whose SUCCEEDED result the broker acknowledged",
            "model",
        )
        self.requests_failed = counter(
            "streamgen_requests_failed",
            "Requests whose FAILED result the broker acknowledged",
            *("model", "code", "stage"),
        )
        self.requests_dead_lettered = counter(
            "streamgen_requests_dead_lettered",
            "Records whose dead letter the broker acknowledged",
            *("model", "code", "stage"),
        )
        self.requests_cancelled = counter(
            "streamgen_requests_cancelled", "Cancelled requests' results acknowledged", "stage"
        )
        self.cancel_records_skipped = counter(
            "streamgen_cancel_records_skipped", "Malformed cancels"
        )
        self.batch_size = histogram(
            "streamgen_batch_size", "Requests per engine batch", BATCH_SIZE_BUCKETS, "model"
        )
        self.batch_gpu_seconds = histogram(
            "streamgen_batch_gpu_seconds", "Engine time of one batch", GPU_SECONDS_BUCKETS, "model"
        )
        self.queue_wait_seconds = histogram(
            "streamgen_queue_wait_seconds",
            "From the record's arrival at the worker to the start of its batch",
            LATENCY_BUCKETS,
            "model",
        )
        self.request_latency_seconds = histogram(
            "streamgen_request_latency_seconds",
            "End to end: the request's created_at to its result being acknowledged",
            LATENCY_BUCKETS,
            *("model", "status"),
        )
        self.images_generated = counter(
            "streamgen_images_generated", "Images produced by the engine", "model"
        )
        self.in_flight = gauge(
            "streamgen_in_flight_requests", "Records handed out and not yet durable"
        )
        self.paused_partitions = gauge(
            "streamgen_paused_partitions", "Assigned partitions paused by backpressure"
        )
        self.assigned_partitions = gauge(
            "streamgen_assigned_partitions", "Partitions this worker owns"
        )
        self.commit_lag = gauge(
            "streamgen_commit_lag_messages",
            "Log end offset minus committed offset, per owned partition",
            *("topic", "partition"),
        )
        self.partition_stalled = gauge(
            "streamgen_partition_stalled_seconds",
            "Records waiting, no fetch progress this long (past worker.stall_timeout_s only)",
            *("topic", "partition"),
        )
        self.backlog_gpu_seconds = gauge(
            "streamgen_backlog_gpu_seconds",
            "Estimated GPU time to process this worker's commit lag",
        )
        self.rebalances = counter("streamgen_rebalances", "Partition assignment changes", "kind")
        self.store_retries = counter("streamgen_store_retries", "Object-store writes retried")
        self.produce_retries = counter(
            "streamgen_produce_retries", "Result or dead-letter produces retried"
        )
        self.commits = counter("streamgen_commits", "Offset commits sent")
        self.worker_info = Info("streamgen_worker", "Identity of this worker", registry=r)
        self.warmup_seconds = gauge(
            "streamgen_warmup_seconds",
            "How long the start-up warm-up (engine.warmup_shapes, every batch bucket) took",
        )
        if gpu:
            r.register(GpuCollector())
        for kind in REBALANCE_KINDS:
            self.rebalances.labels(kind)  # present at 0 so rate() sees the first rebalance
        self._backlog = WorkerBacklog()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def _labelled(self, metric: Counter | Histogram, *values: str) -> Any:
        """``metric.labels(*values)``, remembered: prometheus-client checks the values and
        takes a lock on every call, several times per request. Only for series that are never
        removed (``commit_lag``'s are, so it is not asked here)."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    # -- counters fed per request -----------------------------------------------------------
    def model_label(self, model: str) -> str:
        if not model or (self._models is not None and model not in self._models):
            return UNKNOWN_MODEL
        return model

    def request_consumed(self, model: str, pixel_steps: int = 0) -> None:
        """A record left the consumer: decoded (``model`` known) or rejected (``""``)."""
        self._labelled(self.requests_consumed, self.model_label(model)).inc()
        if pixel_steps > 0:
            self._backlog.consumed(pixel_steps)

    def observe_batch(
        self, model: str, size: int, gpu_seconds: float, images: int, pixel_steps: int = 0
    ) -> None:
        """The engine returned a batch of ``size`` requests with ``images`` good images."""
        label = self.model_label(model)
        self._labelled(self.batch_size, label).observe(size)
        self._labelled(self.batch_gpu_seconds, label).observe(gpu_seconds)
        self._labelled(self.images_generated, label).inc(images)
        if pixel_steps > 0:
            self._backlog.generated(pixel_steps, gpu_seconds)
            self._update_backlog()

    def request_finished(
        self,
        model: str,
        status: Literal["SUCCEEDED", "FAILED"],
        *,
        error_code: str = "",
        stage: str = "",
        queue_wait_s: float | None = None,
        e2e_s: float | None = None,
    ) -> None:
        """A result event was acknowledged by the broker."""
        label = self.model_label(model)
        if status == "SUCCEEDED":
            self._labelled(self.requests_succeeded, label).inc()
        else:
            code, at = error_code or "UNKNOWN", stage or "unknown"
            self._labelled(self.requests_failed, label, code, at).inc()
        if queue_wait_s is not None:
            self._labelled(self.queue_wait_seconds, label).observe(max(queue_wait_s, 0.0))
        if e2e_s is not None:
            # Producer and worker clocks differ; a negative latency is skew, not speed.
            latency = self._labelled(self.request_latency_seconds, label, status)
            latency.observe(max(e2e_s, 0.0))

    def dead_lettered(self, model: str, code: str, stage: str) -> None:
        """A dead letter was acknowledged by the broker (``model`` "" when undecodable)."""
        self.requests_dead_lettered.labels(
            self.model_label(model), code or "UNKNOWN", stage or "unknown"
        ).inc()

    def request_cancelled(self, stage: str) -> None:
        """A cancelled request's result was acknowledged (``request_finished`` counts it too)."""
        self._labelled(self.requests_cancelled, stage or "unknown").inc()

    def cancel_record_skipped(self) -> None:
        self.cancel_records_skipped.inc()

    # -- gauges and counters fed by the consumer loop ---------------------------------------
    def set_in_flight(self, n: int) -> None:
        self.in_flight.set(n)

    def set_paused_partitions(self, n: int) -> None:
        self.paused_partitions.set(n)

    def rebalanced(
        self,
        kind: RebalanceKind,
        assigned: int,
        partitions: Iterable[tuple[str, int]] = (),
    ) -> None:
        """After an assign/revoke/lost callback: ``assigned`` is the count now owned,
        ``partitions`` those that changed (revoked and lost ones stop exporting lag)."""
        if kind not in REBALANCE_KINDS:
            raise ValueError(f"rebalance kind {kind!r} not in {REBALANCE_KINDS}")
        self.rebalances.labels(kind).inc()
        self.assigned_partitions.set(assigned)
        if kind != "assign":
            for topic, partition in partitions:
                self.forget_partition(topic, partition)

    def committed(self, partitions: int = 1) -> None:
        """One commit request covering ``partitions`` partitions was answered."""
        if partitions > 0:
            self.commits.inc()

    def set_commit_lag(self, topic: str, partition: int, log_end: int, committed: int) -> None:
        """``committed`` < 0 (nothing committed yet) counts the whole log as lag."""
        lag = max(log_end - max(committed, 0), 0)
        self.commit_lag.labels(topic, str(partition)).set(lag)
        self._backlog.set_lag(topic, partition, lag)
        self._update_backlog()

    def set_partition_stall(self, topic: str, partition: int, seconds: float | None) -> None:
        """``seconds`` None: the partition moves again (or is no longer ours)."""
        if seconds is not None:
            self.partition_stalled.labels(topic, str(partition)).set(seconds)
        else:
            with contextlib.suppress(KeyError):  # never reported stalled
                self.partition_stalled.remove(topic, str(partition))

    def forget_partition(self, topic: str, partition: int) -> None:
        self._backlog.forget(topic, partition)
        self.set_partition_stall(topic, partition, None)
        with contextlib.suppress(KeyError):  # never reported for this partition
            self.commit_lag.remove(topic, str(partition))
        self._update_backlog()

    def store_retry(self) -> None:
        self.store_retries.inc()

    def produce_retry(self) -> None:
        self.produce_retries.inc()

    def set_worker_info(
        self, *, worker_id: str, host: str, device: str, group_id: str, version: str = ""
    ) -> None:
        info = {"worker_id": worker_id, "host": host, "device": device, "group_id": group_id}
        self.worker_info.info({**info, "version": version})

    def warmed_up(self, seconds: float) -> None:
        self.warmup_seconds.set(seconds)

    # -- derived -----------------------------------------------------------------------------
    def backlog_gpu_seconds_estimate(self) -> float | None:
        """This worker's lag x recent mean request cost / recent throughput, if measured."""
        return self._backlog.gpu_seconds()

    def _update_backlog(self) -> None:
        estimate = self.backlog_gpu_seconds_estimate()
        if estimate is not None:
            self.backlog_gpu_seconds.set(estimate)

    # -- exposition (streamgen.telemetry.exposition) -----------------------------------------
    def serve(
        self,
        port: int,
        addr: str = "0.0.0.0",
        *,
        ready: Callable[[], tuple[bool, str]] | None = None,
    ) -> Any:
        """Serve ``/metrics`` (and ``/ready`` when given) for this registry: see
        :func:`~streamgen.telemetry.exposition.serve_http`."""
        return serve_http(self.registry, port, addr, ready=ready)

    def series_names(self) -> set[str]:
        """Every sample name this registry can expose (``_total``, ``_bucket`` … included)."""
        return series_names(self.registry)
