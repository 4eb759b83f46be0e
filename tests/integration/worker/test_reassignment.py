"""A partition that leaves a paused worker and comes back is fetched again (issue 22, item 1).

librdkafka keeps a partition's pause flag across revoke and re-assign. A worker that is full
pauses its partitions; one revoked then (another member joined) and given back later, when
the worker is no longer paused, came back paused, and nothing resumed it: its requests waited
for ever while the group showed the worker as its owner. Real broker, real worker, under both
group protocols.
"""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer

from streamgen.engine import DiffusionEngine
from streamgen.settings import Settings
from streamgen.store import open_store
from streamgen.store.encode import encode_image
from streamgen.telemetry.metrics import Metrics
from streamgen.telemetry.worker_hooks import WorkerHooks
from streamgen.worker.assembly import group_protocol_config
from tests.chaos.harness.groups import set_consumer_group_session
from tests.integration.worker.conftest import (
    all_committed,
    committed_offsets,
    end_offsets,
    make_request,
    publish,
    wait_until,
    with_worker,
    worker_thread,
)
from tests.integration.worker.engines import GatedEngine

pytestmark = pytest.mark.integration

PER_PARTITION = 4


def other_member(settings: Settings) -> Consumer:
    """A second member of the worker's group, which only holds the partitions it is given."""
    w = settings.worker
    return Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": w.group_id,
            "enable.auto.commit": False,
            **group_protocol_config(w.group_protocol, w.session_timeout_ms),
        }
    )


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_a_partition_revoked_while_paused_is_fetched_again_when_it_comes_back(
    worker_settings: Settings, protocol: str
) -> None:
    # One request in flight, held on the "GPU", and a two-record buffer: the worker is full
    # and pauses its partitions; the other member joins while it is.
    settings = with_worker(
        worker_settings,
        group_protocol=protocol,
        max_in_flight=1,
        fetch_buffer_records=2,
        session_timeout_ms=6000,
        max_wait_ms=0,
    )
    if protocol == "consumer":
        set_consumer_group_session(settings, 6000, 1000)
    partitions = settings.topics.partitions
    publish(
        settings,
        [make_request(p * 100 + i) for i in range(PER_PARTITION) for p in range(partitions)],
    )
    engine = GatedEngine(DiffusionEngine(settings.engine))
    hooks = WorkerHooks(Metrics(), worker_id="w", host="h", group_id=settings.worker.group_id)
    paused = lambda: hooks.metrics.registry.get_sample_value("streamgen_paused_partitions")  # noqa: E731
    store = open_store(settings.store)
    with worker_thread(settings, engine=engine, store=store, encode=encode_image, hooks=hooks):
        assert wait_until(lambda: (paused() or 0) > 0, 120)
        member = other_member(settings)
        member.subscribe([settings.topics.requests])
        try:
            assert wait_until(lambda: bool(member.consume(1, 0.2) or member.assignment()), 60)
            taken = {tp.partition for tp in member.assignment()}
            assert 0 < len(taken) < partitions
            engine.gate.set()
            ends = end_offsets(settings)

            def worker_done_with_its_own() -> bool:
                member.consume(1, 0.1)  # the other member stays alive and keeps its share
                committed = committed_offsets(settings)
                return all(committed[p] == ends[p] for p in range(partitions) if p not in taken)

            # Only now, its backlog done, is the worker unpaused when they come back.
            assert wait_until(worker_done_with_its_own, 120)
            assert paused() == 0
        finally:
            member.close()  # leaves: its partitions go back to the worker
        # Every partition's lag returns to 0: the ones that came back are fetched again.
        assert wait_until(lambda: all_committed(settings), 120), (
            f"stuck partitions: committed {committed_offsets(settings)} vs ends {ends} "
            f"(taken and given back: {sorted(taken)})"
        )
