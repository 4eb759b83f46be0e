"""ConsumerLoop with per-tenant caps (worker.tenant_max_in_flight), without a broker: a capped
flood leaves the window to another tenant's record behind it, and whatever the GPU and the
coordinator do, no commit passes a record that is not done, the window stays bounded, and
every partition's commits keep moving (the record holding a commit point is never starved)."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from streamgen.contracts.request import GenerationRequest
from streamgen.errors import SchemaRegistryUnavailable
from streamgen.worker.backoff import Backoff
from streamgen.worker.events import OutcomeSummary
from streamgen.worker.loop import ConsumerLoop
from streamgen.worker.pauses import Pauses
from streamgen.worker.work_item import WorkItem
from tests.unit.worker.test_loop_window import TOPIC, Admissions, EndlessPartitions, make_loop

Done = dict[int, set[int]]  # partition -> offsets whose outputs are durable


def finish_some(loop: ConsumerLoop, n: int, done: Done) -> None:
    """The GPU and the outputs finish up to ``n`` of the next ready batch; the rest wait."""
    loop.work.flush()
    batch = loop.work.take(timeout=0.0)
    if batch is None:
        return
    for i, item in enumerate(batch.items):
        if i < n:
            loop.events.durable(item.ticket, OutcomeSummary("SUCCEEDED", "", ""))
            done[item.ticket.partition].add(item.ticket.offset)
        else:
            loop.work.put(item)


def assert_commits_behind_done(consumer: EndlessPartitions, done: Done) -> None:
    for partition, committed in consumer.committed.items():
        missing = set(range(committed)) - done[partition]
        assert not missing, f"partition {partition} committed {committed} past {sorted(missing)}"


def test_a_capped_flood_leaves_the_window_to_a_small_tenants_record_behind_it() -> None:
    def run(caps: dict[str, int]) -> tuple[ConsumerLoop, EndlessPartitions, list[WorkItem]]:
        admissions = Admissions(lambda p, o: "small" if o == 20 else "flood")
        loop, consumer, _ = make_loop(
            8, 1, buffer_records=50, tenant_caps=lambda t: caps.get(t, 0), admissions=admissions
        )
        consumer.answering = False  # nothing finishes, nothing is committed: the worst case
        for _ in range(20):
            loop.step()
        return loop, consumer, loop.work.remove(lambda item: True)

    _, _, queued = run({})
    assert {i.request.request_id for i in queued} == {f"r-0-{o}" for o in range(8)}
    loop, consumer, queued = run({"flood": 2})
    # Two of the flood's, then the small tenant's record from behind 18 of the flood's.
    assert {i.request.request_id for i in queued} == {"r-0-0", "r-0-1", "r-0-20"}
    assert loop.deferrals.counts() == {"flood": 50}  # as many as may be set aside: no more
    assert loop.tracker.uncommitted() == 3
    # All three finish and commits are answered: the commit stops at the first record set
    # aside, and the flood's records come in, oldest first, as its cap allows.
    consumer.answering = True
    for item in queued:
        loop.events.durable(item.ticket, OutcomeSummary("SUCCEEDED", "", ""))
    for _ in range(3):
        loop.step()
    assert consumer.committed[0] == 2
    assert {i.request.request_id for i in loop.work.remove(lambda item: True)} == {
        "r-0-2",
        "r-0-3",
    }


TENANTS = ["flood", "bulk", "small"]  # the first two capped


@settings(max_examples=100, deadline=None)
@given(
    max_in_flight=st.integers(2, 16),
    partitions=st.integers(1, 3),
    caps=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    # Whose each record is, by offset, repeating: floods of one tenant or mixtures.
    pattern=st.lists(st.sampled_from(TENANTS), min_size=1, max_size=12),
    # Each step: does the coordinator answer commits, how many of a batch does the GPU finish?
    steps=st.lists(st.tuples(st.booleans(), st.integers(0, 8)), min_size=1, max_size=50),
)
def test_with_caps_commits_stay_behind_done_work_and_every_partition_moves(
    max_in_flight: int,
    partitions: int,
    caps: tuple[int, int],
    pattern: list[str],
    steps: list[tuple[bool, int]],
) -> None:
    cap_of = dict(zip(TENANTS, caps, strict=False))
    admissions = Admissions(lambda p, o: pattern[(o + p) % len(pattern)])
    loop, consumer, _ = make_loop(
        max_in_flight,
        partitions,
        buffer_records=30,
        tenant_caps=lambda t: cap_of.get(t, 0),
        admissions=admissions,
    )
    done: Done = {p: set() for p in range(partitions)}
    for answering, finish in steps:
        consumer.answering = answering
        loop.step()
        assert loop.tracker.uncommitted() <= max_in_flight
        assert len(loop.deferrals) <= loop.deferrals.max_records
        assert_commits_behind_done(consumer, done)
        finish_some(loop, finish, done)
    # Then the coordinator answers and the GPU runs: every partition's commits move on.
    consumer.answering = True
    before = dict(consumer.committed)
    for _ in range(60):
        loop.step()
        assert loop.tracker.uncommitted() <= max_in_flight
        assert_commits_behind_done(consumer, done)
        finish_some(loop, 8, done)
    stuck = [p for p in range(partitions) if consumer.committed[p] <= before[p]]
    assert not stuck, f"partitions {stuck} never committed again: a deadlock"


def flood_capped_at_2(admissions: Admissions) -> tuple[ConsumerLoop, EndlessPartitions]:
    """Two partitions, a window of 8, tenant "flood" capped at 2."""
    caps = {"flood": 2}
    loop, consumer, _ = make_loop(
        8, 2, buffer_records=40, tenant_caps=lambda t: caps.get(t, 0), admissions=admissions
    )
    return loop, consumer


def test_a_revoked_partitions_records_set_aside_are_read_again_by_its_next_owner() -> None:
    admissions = Admissions(lambda p, o: "small" if o % 4 == 0 else "flood")
    loop, consumer = flood_capped_at_2(admissions)
    done: Done = {0: set(), 1: set()}
    for _ in range(6):
        loop.step()
        finish_some(loop, 3, done)
    tp = (TOPIC, 1)
    assert loop.deferrals.count(tp) > 0
    read_so_far = admissions.next[1]  # decoded: handed out or set aside
    # What the rebalance handler does on revoke: drop what was fetched or set aside and the
    # waiting work, commit what is durable, forget the partition.
    loop.drop_fetched({tp})
    loop.work.remove(lambda item: item.ticket.tp == tp)
    loop.commit_now(only=[tp])
    loop.tracker.revoke(tp)
    assert loop.deferrals.count(tp) == 0
    loop.step()  # the commit's answer arrives
    assert_commits_behind_done(consumer, done)
    assert consumer.committed[1] < read_so_far  # below what was set aside
    # The next owner (here the same worker, re-assigned) reads from the committed offset.
    loop.tracker.assign(tp)
    consumer.next[1] = consumer.committed[1]
    loop.pauses.adopt([TopicPartition(TOPIC, 1)])
    for _ in range(60):
        loop.step()
        assert_commits_behind_done(consumer, done)
        finish_some(loop, 8, done)
    assert consumer.committed[1] > read_so_far  # everything set aside was read again and done


class FlakyRegistry(Admissions):
    """Every seventh of the first 50 records of partition 0 fails to decode the first time
    (the schema registry away): the loop blocks the partition and rewinds it to that record."""

    def __init__(self, tenant_of: Callable[[int, int], str]) -> None:
        super().__init__(tenant_of)
        self.failed: set[int] = set()

    def decode(self, value: bytes) -> GenerationRequest:
        _, partition, offset = value.decode().split("-")
        first = int(offset) not in self.failed
        if partition == "0" and int(offset) < 50 and int(offset) % 7 == 3 and first:
            self.failed.add(int(offset))
            raise SchemaRegistryUnavailable(f"registry away at {offset}")
        return super().decode(value)


def test_rewinds_for_a_transient_decode_failure_lose_no_record_set_aside() -> None:
    admissions = FlakyRegistry(lambda p, o: "small" if o % 5 == 0 else "flood")
    loop, consumer = flood_capped_at_2(admissions)
    # Blocked partitions come back at once: the test counts steps, not seconds.
    loop.pauses = Pauses(consumer, loop.tracker, loop.buffer, Backoff(1e-6, 1e-6), loop.hooks)  # type: ignore[arg-type]
    done: Done = {0: set(), 1: set()}
    rewound_with_records_aside = 0
    for _ in range(150):
        failures = len(admissions.failed)
        loop.step()
        if len(admissions.failed) > failures and loop.deferrals.count((TOPIC, 0)):
            rewound_with_records_aside += 1
        assert_commits_behind_done(consumer, done)
        finish_some(loop, 4, done)
    assert len(admissions.failed) == 7 and rewound_with_records_aside >= 3
    assert consumer.committed[0] > 50  # every record of the rewinds done, none skipped
