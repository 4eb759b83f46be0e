"""The oracle: judges the fleet only by what it can observe from outside.

Inputs: what the load generator had acknowledged, the results and dead-letter topics, the
object store, and the group's committed offsets sampled *during* the faults. Checks:

1. no loss: every acknowledged record has a final outcome (a SUCCEEDED result; or its dead
   letter, plus a FAILED result when it carried a request id; or, for a request someone
   cancelled, a result whose error code is CANCELLED);
2. commit safety: at every sample, every acknowledged offset below the committed one already
   had its outcome in a topic (images are written before a result is produced, and (3)
   checks them), and no committed offset ever moved back;
3. referential integrity: every SUCCEEDED result's images exist and hash to its sha256;
4. duplicates: result events per request beyond the first, counted.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from streamgen.settings import Settings
from streamgen.store import open_store
from tests.chaos.harness.follow import DeadLetter, FleetOutputs
from tests.chaos.harness.load import Acked
from tests.integration.worker.conftest import committed_offsets, end_offsets

__all__ = [
    "CommitSample",
    "CommitSampler",
    "Verdict",
    "judge",
    "outcome_of",
    "settle",
    "settle_each",
]


@dataclass(frozen=True)
class CommitSample:
    at: float  # time.monotonic()
    committed: dict[int, int]
    results_known: int  # prefix lengths of FleetOutputs read *after* the offsets were fetched
    dead_known: int


class CommitSampler:
    """Polls the group's committed offsets in the background, then reads the outputs.

    Committed offsets are fetched first and the topics read second, so an outcome that was
    durable when the commit happened is always in the prefix the sample records: a violation
    is never reported falsely, and one that lasts longer than a sample round trip is caught.
    """

    def __init__(self, settings: Settings, outputs: FleetOutputs, interval: float = 0.3) -> None:
        self._outputs = outputs
        self._interval = interval
        self._partitions = [
            TopicPartition(settings.topics.requests, p) for p in range(settings.topics.partitions)
        ]
        self._consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka.bootstrap_servers,
                "group.id": settings.worker.group_id,  # never subscribes: only asks
                "enable.auto.commit": False,
            }
        )
        self.samples: list[CommitSample] = []
        self.failed_samples = 0  # broker unreachable: counted, not judged
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-sampler", daemon=True)

    def __enter__(self) -> CommitSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self._consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception:  # the broker is down on purpose in some scenarios
                self.failed_samples += 1
            self._stop.wait(self._interval)

    def sample(self) -> None:
        answered = self._consumer.committed(self._partitions, timeout=3)
        committed = {tp.partition: tp.offset for tp in answered if tp.offset >= 0}
        results_known, dead_known = self._outputs.refresh(timeout=5)
        self.samples.append(CommitSample(time.monotonic(), committed, results_known, dead_known))


@dataclass
class Verdict:
    requests: int
    lost: list[str] = field(default_factory=list)
    duplicates: int = 0
    dead_letters: int = 0
    broken_references: list[str] = field(default_factory=list)
    unsafe_commits: list[str] = field(default_factory=list)
    commit_regressions: list[str] = field(default_factory=list)
    samples: int = 0

    def assert_safe(self, *, max_duplicates: int) -> None:
        problems = []
        if self.lost:
            problems.append(f"{len(self.lost)} lost: {self.lost[:5]}")
        if self.unsafe_commits:
            problems.append(f"commits ahead of outputs: {self.unsafe_commits[:5]}")
        if self.commit_regressions:
            problems.append(f"committed offsets moved back: {self.commit_regressions[:5]}")
        if self.broken_references:
            problems.append(f"broken image references: {self.broken_references[:5]}")
        if self.duplicates > max_duplicates:
            problems.append(f"{self.duplicates} duplicates > bound {max_duplicates}")
        assert not problems, "; ".join(problems)


def outcome_of(
    record: Acked,
    statuses: dict[str, set[str]],
    dead_at: set[tuple[int, int]],
    cancelled: frozenset[str] = frozenset(),
) -> bool:
    """Has this acknowledged record reached a final outcome (invariant 1)? A CANCELLED result
    ends only a request that was cancelled; any other request still owes its SUCCEEDED."""
    dead = (record.partition, record.offset) in dead_at
    if record.request_id is None:
        return dead
    seen = statuses.get(record.request_id, set())
    if "CANCELLED" in seen and record.request_id in cancelled:
        return True
    return "SUCCEEDED" in seen or ("FAILED" in seen and dead)


def _index(
    outputs: FleetOutputs, requests_topic: str, results: int | None, dead: int | None
) -> tuple[dict[str, set[str]], set[tuple[int, int]], list[DeadLetter]]:
    statuses: dict[str, set[str]] = {}
    for result in outputs.results(results):
        status = result.status
        if result.error is not None and result.error.code == "CANCELLED":
            status = "CANCELLED"  # a FAILED result that ends a cancelled request, no dead letter
        statuses.setdefault(result.request_id, set()).add(status)
    letters = outputs.dead_letters(dead)
    dead_at = {p for p in (d.position(requests_topic) for d in letters) if p is not None}
    return statuses, dead_at, letters


def judge(
    settings: Settings,
    acked: list[Acked],
    outputs: FleetOutputs,
    samples: list[CommitSample] = (),  # type: ignore[assignment]
    *,
    cancelled: frozenset[str] = frozenset(),
) -> Verdict:
    """Check invariants 1-4 over everything the fleet wrote (call after the faults healed);
    ``cancelled``: the request ids someone cancelled (a CANCELLED result then ends them)."""
    topic = settings.topics.requests
    outputs.refresh()
    statuses, dead_at, letters = _index(outputs, topic, None, None)
    verdict = Verdict(requests=len(acked), samples=len(samples))
    ours = {a.request_id for a in acked if a.request_id}
    positions = {(a.partition, a.offset) for a in acked}
    # 1. No loss.
    verdict.lost = [
        a.request_id or f"{a.partition}@{a.offset}"
        for a in acked
        if not outcome_of(a, statuses, dead_at, cancelled)
    ]
    verdict.dead_letters = sum(1 for d in letters if d.position(topic) in positions)
    # 2. Commit safety, sample by sample, against what was in the topics at that instant.
    by_position = {(a.partition, a.offset): a for a in acked}
    last: dict[int, int] = {}
    for sample in samples:
        then_statuses, then_dead, _ = _index(
            outputs, topic, sample.results_known, sample.dead_known
        )
        for partition, committed in sample.committed.items():
            if committed < last.get(partition, -1):
                verdict.commit_regressions.append(f"p{partition}: {last[partition]} -> {committed}")
            last[partition] = committed
            for offset in range(committed):
                record = by_position.get((partition, offset))
                if record and not outcome_of(record, then_statuses, then_dead, cancelled):
                    verdict.unsafe_commits.append(
                        f"p{partition} committed {committed} before offset {offset} "
                        f"({record.request_id}) had an outcome"
                    )
    # 3. Referential integrity, by reading every image back.
    store = open_store(settings.store)
    for result in outputs.results():
        if result.status != "SUCCEEDED" or result.request_id not in ours:
            continue
        if not result.images:
            verdict.broken_references.append(f"{result.request_id}: SUCCEEDED without images")
        for image in result.images:
            try:
                data = store.get(image.uri)
            except FileNotFoundError:
                verdict.broken_references.append(f"{image.uri}: missing")
                continue
            if hashlib.sha256(data).hexdigest() != image.sha256:
                verdict.broken_references.append(f"{image.uri}: sha256 differs")
    # 4. Duplicates: every result event for a request beyond its first.
    per_request = Counter(r.request_id for r in outputs.results() if r.request_id in ours)
    verdict.duplicates = sum(n - 1 for n in per_request.values())
    return verdict


def settle(
    settings: Settings,
    load_acked: Callable[[], list[Acked]],
    outputs: FleetOutputs,
    timeout: float,
    *,
    since: float | None = None,
    cancelled: frozenset[str] = frozenset(),
) -> float:
    """Liveness: wait until every acknowledged record has an outcome and the group has
    committed every partition to its end; return the seconds from ``since`` (the instant the
    fault healed; default now) to then: the recovery time."""
    only = {"": (settings, load_acked)}
    return settle_each(only, outputs, timeout, since=since, cancelled=cancelled)[""]


def settle_each(
    topics: Mapping[str, tuple[Settings, Callable[[], list[Acked]]]],
    outputs: FleetOutputs,
    timeout: float,
    *,
    since: float | None = None,
    cancelled: frozenset[str] = frozenset(),
) -> dict[str, float]:
    """:func:`settle` for several requests topics at once (the lanes of scenario 15; each
    name's settings name its topic as ``topics.requests``), checked in the same rounds: each
    name's recovery time is from ``since`` to the first check that found it settled."""
    start = time.monotonic()
    since = start if since is None else since
    settled: dict[str, float] = {}
    missing: dict[str, list[Acked]] = {}
    while time.monotonic() - start < timeout:
        try:
            outputs.refresh(timeout=5)
            for name, (settings, load_acked) in topics.items():
                if name in settled:
                    continue
                statuses, dead_at, _ = _index(outputs, settings.topics.requests, None, None)
                missing[name] = [
                    a for a in load_acked() if not outcome_of(a, statuses, dead_at, cancelled)
                ]
                if not missing[name] and committed_offsets(settings) == end_offsets(settings):
                    settled[name] = time.monotonic() - since
            if len(settled) == len(topics):
                return settled
        except Exception:  # the broker may still be electing leaders after a restart
            pass
        time.sleep(0.25)
    problems = [
        f"{name + ': ' if name else ''}{len(missing.get(name, []))} records without an outcome "
        f"({[a.request_id for a in missing.get(name, [])[:5]]}), committed "
        f"{committed_offsets(settings)} vs ends {end_offsets(settings)}"
        for name, (settings, _) in topics.items()
        if name not in settled
    ]
    raise AssertionError(f"not settled after {timeout:.0f}s: {'; '.join(problems)}")
