"""A redo never rewrites what a published event names (DESIGN invariant 3).

The group is rewound after a first run, as an operator does with
``kafka-consumer-groups --reset-offsets --to-earliest``, and a second worker redoes the same
requests. A result carries timings, so the redo's bytes differ from the first run's: the
claim-checked result (and every image) must still be the object the first event describes.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from streamgen.contracts import dead_letter as dl
from streamgen.contracts.codec import request_codec, result_codec
from streamgen.contracts.result import GenerationResult
from streamgen.settings import Settings
from streamgen.store import open_store
from tests.integration.worker.conftest import make_request, serve
from tests.support.kafka import consume_all

pytestmark = pytest.mark.integration

# Metadata is copied into the result: over the worker producer's default message.max.bytes
# (1,000,000), so the result goes out claim-checked.
BIG_METADATA_BYTES = 1_040_000


def rewind_group(settings: Settings) -> None:
    """Every requests partition of the worker's group back to offset 0."""
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    start = [
        TopicPartition(settings.topics.requests, p, 0) for p in range(settings.topics.partitions)
    ]
    group = ConsumerGroupTopicPartitions(settings.worker.group_id, start)
    for future in admin.alter_consumer_group_offsets([group]).values():
        future.result(timeout=30)


@pytest.mark.parametrize("store_kind", ["minio", "file"])
def test_a_redo_keeps_every_object_the_first_result_events_name(
    worker_settings: Settings, store_kind: str, tmp_path: Path
) -> None:
    settings = worker_settings
    if store_kind == "file":
        settings = replace(settings, store=replace(settings.store, url=f"file://{tmp_path}"))
    big = make_request(0, num_images=2, metadata={"blob": "m" * BIG_METADATA_BYTES})
    small = make_request(1, num_images=2)
    codec = request_codec(settings.kafka, settings.topics.requests)
    producer = Producer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "message.max.bytes": 2_000_000}
    )
    for request in (big, small):
        producer.produce(
            settings.topics.requests, key=request.request_id.encode(), value=codec.encode(request)
        )
    assert producer.flush(30) == 0

    serve(settings, expected=2)
    rewind_group(settings)
    serve(settings, expected=4)

    results = result_codec(settings.kafka, settings.topics.results)
    events: dict[str, list[tuple[GenerationResult, dl.ClaimCheck | None]]] = {}
    for message in consume_all(
        settings.kafka.bootstrap_servers, settings.topics.results, expected=4, timeout=30
    ):
        result = results.decode(message.value())
        events.setdefault(result.request_id, []).append(
            (result, dl.read_claim_check(message.headers()))
        )
    assert {rid: len(both) for rid, both in events.items()} == {
        big.request_id: 2,
        small.request_id: 2,
    }, "each request was done twice"

    store = open_store(settings.store)
    (first, first_claim), (_, redo_claim) = events[big.request_id]
    assert first_claim is not None and first_claim.value is not None
    kept = store.get(first_claim.value.uri)
    assert hashlib.sha256(kept).hexdigest() == first_claim.value.sha256, (
        "the claim-checked result the first event names was rewritten by the redo"
    )
    assert len(kept) == first_claim.value.size
    # The redo's event names the same object with the checksum it really has.
    assert redo_claim == first_claim
    assert results.decode(kept).images == first.images

    checked = 0
    for both in events.values():
        for result, _ in both:
            for image in result.images:
                assert hashlib.sha256(store.get(image.uri)).hexdigest() == image.sha256
                checked += 1
    assert checked == 8  # 2 requests x 2 images x 2 events
