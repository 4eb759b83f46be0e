"""The topics (and, for the secure stack, the ACLs) a deployment gets: the cancels topic is
compacted with one partition, the progress topic spread like the requests, and an empty
``topics.cancels`` / ``topics.progress`` leaves it out everywhere instead of naming a topic ""."""

from __future__ import annotations

from confluent_kafka.admin import AclOperation, ResourceType  # type: ignore[attr-defined]

from streamgen.local.acls import producer_acls, worker_acls
from streamgen.ops.topics import plan_topics
from streamgen.settings import TopicSettings


def test_the_cancels_topic_is_compacted_with_one_partition() -> None:
    plan = {spec.name: spec for spec in plan_topics(TopicSettings(partitions=6))}
    assert plan["streamgen.requests"].partitions == 6
    cancels = plan["streamgen.cancels"]
    assert (cancels.partitions, cancels.cleanup_policy) == (1, "compact,delete")
    assert [t for _, t, _ in worker_acls(TopicSettings(), "g")].count("streamgen.cancels") == 1
    assert [t for _, t, _ in producer_acls(TopicSettings())].count("streamgen.cancels") == 1


def test_the_progress_topic_is_keyed_like_requests_short_lived_written_by_workers() -> None:
    plan = {spec.name: spec for spec in plan_topics(TopicSettings(partitions=6))}
    progress = plan["streamgen.progress"]
    assert (progress.partitions, progress.cleanup_policy) == (6, "delete")
    assert progress.retention_ms < TopicSettings().retention_ms
    assert (ResourceType.TOPIC, "streamgen.progress", AclOperation.WRITE) in worker_acls(
        TopicSettings(), "g"
    )
    # submit --wait reads it, as it reads the results
    assert (ResourceType.TOPIC, "streamgen.progress", AclOperation.READ) in producer_acls(
        TopicSettings()
    )


def test_an_empty_cancels_setting_leaves_the_topic_and_its_acls_out() -> None:
    off = TopicSettings(cancels="", progress="")
    assert [spec.name for spec in plan_topics(off)] == [
        "streamgen.requests",
        "streamgen.results",
        "streamgen.dead-letter",
    ]
    assert "" not in {t for _, t, _ in worker_acls(off, "g")}
    assert "" not in {t for _, t, _ in producer_acls(off)}
