"""`streamgen lag` with priority lanes, against the real broker: one report per lane, highest
first, each with its own lag, backlog and time to drain."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, Producer, TopicPartition

from streamgen.cli import main
from streamgen.contracts.codec import request_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.lanes import lane_topic
from streamgen.ops.topics import create_topics, plan_topics
from streamgen.settings import Lane, Settings

pytestmark = pytest.mark.integration

LANES = "interactive=0.1,default=0.3,bulk=0.1"
WAITING = {"interactive": 1, "default": 0, "bulk": 5}


def test_lag_reports_each_lane(stack_settings: Settings) -> None:
    topics = stack_settings.topics
    lanes = (Lane("interactive", 0.1), Lane("default", 0.3), Lane("bulk", 0.1))
    with_lanes = replace(topics, lanes=lanes)
    create_topics(stack_settings.kafka.bootstrap_servers, plan_topics(with_lanes))
    producer = Producer({"bootstrap.servers": stack_settings.kafka.bootstrap_servers})
    for lane, count in WAITING.items():
        topic = lane_topic(with_lanes, lane)
        codec = request_codec(stack_settings.kafka, topic)
        for i in range(count):
            request = GenerationRequest(request_id=f"{lane}-{i}", prompt="p", model="tiny")
            producer.produce(topic, key=request.request_id.encode(), value=codec.encode(request))
    assert producer.flush(30) == 0
    group = f"lag-{uuid.uuid4().hex[:8]}"
    # The group commits 0 everywhere first, so every lane's partitions have a committed position
    # (lag also waits out a coordinator still loading: tests/unit/ops/test_lag_probe_retry.py).
    committer = Consumer(
        {"bootstrap.servers": stack_settings.kafka.bootstrap_servers, "group.id": group}
    )
    at_start = [
        TopicPartition(lane_topic(with_lanes, lane), p, 0)
        for lane in WAITING
        for p in range(topics.partitions)
    ]
    committer.commit(offsets=at_start, asynchronous=False)
    committer.close()
    args = ["lag", "--bootstrap-servers", stack_settings.kafka.bootstrap_servers]
    args += ["--group", group, "--topic", topics.requests]
    args += ["--results-topic", topics.results, "--set", f"topics.lanes={LANES}"]

    out = CliRunner().invoke(main, [*args, "--json"])
    assert out.exit_code == 0, out.output
    reports = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["lane"], r["topic"], r["total_lag"]) for r in reports] == [
        (lane, lane_topic(with_lanes, lane), count) for lane, count in WAITING.items()
    ]
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0, table.output
    assert table.stdout.index(f"lane interactive ({topics.requests}.interactive)") < (
        table.stdout.index(f"lane bulk ({topics.requests}.bulk)")
    )
    assert "total lag 5 messages" in table.stdout
