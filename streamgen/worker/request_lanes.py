"""The worker's view of the priority lanes (``topics.lanes``, streamgen/lanes.py): which
topics it subscribes to, each record's lane, what a request costs the GPU, and how much of the
window of uncommitted work the lower lanes leave to the highest one.

Each part that chooses by lane (the fetch buffer's admission, the batcher) keeps its own
:class:`LaneScheduler`: one counts records, the other GPU cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamgen.lanes import request_lanes, topic_ranks
from streamgen.settings import Settings
from streamgen.telemetry.backlog import pixel_steps
from streamgen.worker.lane_scheduler import LaneScheduler
from streamgen.worker.offsets import TopicPartitionKey
from streamgen.worker.work_item import WorkItem

__all__ = ["WorkerLanes", "gpu_cost", "item_tenant"]

# The lower lanes leave this fraction of max_in_flight to the highest lane: enough for a batch
# or two of interactive requests to be admitted at once while a bulk backlog holds the rest,
# little enough that the bulk lane keeps several batches queued ahead of the GPU.
RESERVED_FRACTION = 4


@dataclass(frozen=True)
class WorkerLanes:
    topics: tuple[str, ...]  # by rank, the highest lane's first
    shares: tuple[float, ...]
    reserve: int  # places of the window only the highest lane may take (0 with one lane)

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerLanes:
        lanes = request_lanes(settings.topics)
        ranks = topic_ranks(settings.topics)
        one = len(lanes) == 1
        return cls(
            topics=tuple(ranks),
            shares=tuple(lane.min_share for lane in lanes),
            # Never the whole window (a window of 1 must still admit the lower lanes).
            reserve=0 if one else settings.worker.max_in_flight // RESERVED_FRACTION,
        )

    def scheduler(self) -> LaneScheduler:
        return LaneScheduler(self.shares)

    def of_topic(self, topic: str) -> int:
        # One lane: every topic is it (tests and benchmarks subscribe to topics of their own).
        return self.topics.index(topic) if len(self.topics) > 1 else 0

    def of_partition(self, tp: TopicPartitionKey) -> int:
        return self.of_topic(tp[0])

    def of_item(self, item: WorkItem) -> int:
        return self.of_topic(item.record.topic)


def gpu_cost(item: WorkItem) -> float:
    """What a request costs the GPU, in pixel-steps: what the batcher's lane shares count."""
    r = item.request
    return float(pixel_steps(r.steps, r.width, r.height, r.num_images))


def item_tenant(item: WorkItem) -> str:
    """Whose share of a lane a request counts in (worker.tenants; "": the default tenant)."""
    return item.request.tenant
