"""Fair across partitions (issue 22, item 5; DESIGN invariant 11): a worker with a backlog on
every partition serves them in proportion, not one after another, and keeps each partition's
order. Real broker, real worker, the tiny model; the order of service is read from each
result's ``timings.started_at`` (when its batch began), never from wall-clock bounds.
"""

from __future__ import annotations

from collections import Counter

import pytest
from confluent_kafka import Producer

from streamgen.contracts.codec import request_codec
from streamgen.settings import Settings
from tests.integration.worker.conftest import (
    all_committed,
    make_request,
    read_results,
    wait_until,
    with_worker,
    worker_thread,
)

pytestmark = pytest.mark.integration

PER_PARTITION = 12
MAX_IN_FLIGHT = 6


def test_a_backlog_on_every_partition_is_served_in_proportion_and_in_order(
    worker_settings: Settings,
) -> None:
    settings = with_worker(worker_settings, max_in_flight=MAX_IN_FLIGHT, max_wait_ms=0)
    partitions = settings.topics.partitions
    codec = request_codec(settings.kafka, settings.topics.requests)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "acks": "all"})
    partition_of, position = {}, {}
    # The backlog is written one partition after another, as a burst from one producer is.
    for p in range(partitions):
        for i in range(PER_PARTITION):
            request = make_request(p * 100 + i)
            producer.produce(
                settings.topics.requests,
                key=request.request_id.encode(),
                value=codec.encode(request),
                partition=p,
            )
            partition_of[request.request_id], position[request.request_id] = p, i
    assert producer.flush(30) == 0

    with worker_thread(settings) as worker:
        results = read_results(settings, expected=partitions * PER_PARTITION, timeout=300)
        assert wait_until(lambda: all_committed(settings), 60)
        assert worker.stop_and_wait() == 0
    mine = [r for r in results if r.request_id in partition_of]
    assert len(mine) == partitions * PER_PARTITION
    served = sorted(mine, key=lambda r: (r.timings.started_at, position[r.request_id]))
    # In proportion. The first window is whatever the first fetch brought (often one
    # partition: the others' positions are still being looked up), so count the half served
    # after it: every partition has at least two thirds of its share there (served one
    # partition after another, some would have none).
    window = served[MAX_IN_FLIGHT : MAX_IN_FLIGHT + len(served) // 2]
    got = Counter(partition_of[r.request_id] for r in window)
    share = len(window) / partitions
    assert all(got[p] >= 2 * share / 3 for p in range(partitions)), (
        f"served after the first window, per partition: {dict(sorted(got.items()))}"
    )
    # In order: within a partition, no request starts before one written ahead of it.
    for p in range(partitions):
        starts = [r.timings.started_at for r in served if partition_of[r.request_id] == p]
        order = [position[r.request_id] for r in served if partition_of[r.request_id] == p]
        assert order == sorted(order) and starts == sorted(starts)
