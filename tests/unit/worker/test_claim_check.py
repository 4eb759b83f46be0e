"""ClaimChecker: a refused dead letter or result is stored under a deterministic key, off the
consumer thread, and goes out in a form that fits with the original acknowledgement."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from streamgen.contracts import dead_letter as dl
from streamgen.contracts.codec import result_codec
from streamgen.contracts.request import GenerationRequest
from streamgen.contracts.result import WorkerIdentity
from streamgen.errors import DecodeError
from streamgen.settings import KafkaSettings
from streamgen.store.uri import check_key
from streamgen.worker.backoff import Backoff
from streamgen.worker.claim_check import ClaimChecker, dead_letter_keys, result_key
from streamgen.worker.events import OutcomeSummary
from streamgen.worker.offsets import Ticket
from streamgen.worker.outputs import OutcomeSink
from streamgen.worker.storage import StoreRetry
from streamgen.worker.work_item import SourceRecord
from tests.support.events import RecordedEvents
from tests.support.memory_store import MemoryStore
from tests.unit.contracts.strategies import DECODE_FAILURE

CODEC = result_codec(KafkaSettings(), "results")
TICKET = Ticket("requests", 0, 7, 1)
WHY = DECODE_FAILURE
HUGE = SourceRecord("requests", 0, 7, b"huge-1", b"\x07" * 5000, (("app.trace", b"t1"),), 5)


class Inline(Executor):
    """Runs each task at once, where it is submitted; ``tasks`` counts them."""

    def __init__(self) -> None:
        self.tasks = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.tasks += 1
        future: Future[Any] = Future()
        future.set_result(fn(*args, **kwargs))
        return future


class LimitedSender:
    """Refuses values over ``limit`` bytes (through ``on_rejected``), acknowledges the rest."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self.sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        on_ack: Callable[[], None],
        on_rejected: Callable[[str], None] | None = None,
    ) -> None:
        if value is not None and len(value) > self.limit:
            assert on_rejected is not None, "a record that fits was refused"
            on_rejected("MSG_SIZE_TOO_LARGE")
            return
        self.sent.append((topic, key, value, list(headers)))
        on_ack()


def make_sink(
    store: MemoryStore,
) -> tuple[OutcomeSink, LimitedSender, Inline, list[tuple[Ticket, OutcomeSummary]]]:
    sender, pool, events = LimitedSender(), Inline(), RecordedEvents()
    claims = ClaimChecker(
        store=store,
        retry=StoreRetry(Backoff(0.001, 0.001)),
        send=sender.send,
        encode_result=CODEC.encode,
        pool=pool,
        events=events,
    )
    sink = OutcomeSink(
        sender,
        results_topic="results",
        dead_letter_topic="dead",
        group_id="g",
        identity=WorkerIdentity("w-1", "host"),
        encode_result=CODEC.encode,
        events=events,
        claims=claims,
    )
    return sink, sender, pool, events.durables


def test_a_refused_dead_letter_is_claim_checked_and_then_durable() -> None:
    store = MemoryStore({})
    sink, sender, pool, durable = make_sink(store)
    sink.failed(TICKET, HUGE, DecodeError("not avro"), request=None)
    assert pool.tasks == 1, "the store write ran on the output pool"
    [(topic, key, value, headers)] = sender.sent
    assert (topic, key, value) == ("dead", b"huge-1", b"")
    claim = dl.read_claim_check(headers)
    assert claim is not None and claim.value is not None and claim.envelope is None
    assert store.get(claim.value.uri) == HUGE.value
    assert claim.value.sha256 == hashlib.sha256(HUGE.value or b"").hexdigest()
    assert dl.original_headers(headers) == list(HUGE.headers)
    assert [t for t, _ in durable] == [TICKET]


def test_redoing_a_dead_letter_writes_the_same_key_once() -> None:
    store = MemoryStore({})
    for _ in range(2):
        sink, *_ = make_sink(store)
        sink.failed(TICKET, HUGE, DecodeError("not avro"), request=None)
    assert store.puts == [dead_letter_keys(HUGE).value]


def test_huge_headers_go_to_an_envelope_with_the_key() -> None:
    store = MemoryStore({})
    record = SourceRecord("requests", 1, 3, b"k", b"v" * 2000, (("big", b"h" * 20_000),), 5)
    sink, sender, _, _ = make_sink(store)
    sink.failed(TICKET, record, DecodeError("not avro"), request=None)
    [(_, key, _, headers)] = sender.sent
    claim = dl.read_claim_check(headers)
    assert key is None and claim is not None and claim.envelope is not None
    assert dl.decode_envelope(store.get(claim.envelope.uri)) == (b"k", list(record.headers))


def test_a_result_too_large_goes_out_small_with_the_full_one_behind_a_claim_check() -> None:
    store = MemoryStore({})
    sink, sender, _, durable = make_sink(store)
    request = GenerationRequest(
        request_id="r-1", prompt="", model="tiny", metadata={"blob": "x" * 5000}
    )
    sink.failed(TICKET, HUGE, DecodeError("not avro"), request=request)
    [(_, _, _, _), (topic, key, value, headers)] = sender.sent
    assert (topic, key) == ("results", b"r-1")
    claim = dl.read_claim_check(headers)
    assert claim is not None and claim.value is not None
    assert claim.value.uri == "mem://r-1/result.avro"
    full = CODEC.decode(store.get(claim.value.uri))
    assert full.metadata == {"blob": "x" * 5000} and full.status == "FAILED"
    compact = CODEC.decode(value or b"")
    assert compact.request_id == "r-1" and compact.metadata == dl.header_map(headers)
    assert [t for t, _ in durable] == [TICKET], "durable once both records are acknowledged"


def test_a_store_outage_is_retried_on_the_pool_then_published() -> None:
    store = MemoryStore({}, down=True)
    retries: list[str] = []

    def back_up() -> None:
        retries.append("retry")
        store.down = False

    sender, durable, events = LimitedSender(), [], RecordedEvents()
    claims = ClaimChecker(
        store=store,
        retry=StoreRetry(Backoff(0.001, 0.001), on_retry=back_up),
        send=sender.send,
        encode_result=CODEC.encode,
        pool=Inline(),
        events=events,
    )
    claims.dead_letter("dead", HUGE, WHY, lambda: durable.append("ack"), "too large")
    assert retries == ["retry"] and durable == ["ack"] and len(sender.sent) == 1
    assert events.fatals == []


TOPICS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789._-", min_size=1, max_size=249)


@given(topic=TOPICS, partition=st.integers(0, 10_000), offset=st.integers(0, 2**63 - 1))
def test_dead_letter_keys_are_valid_and_one_per_source_record(
    topic: str, partition: int, offset: int
) -> None:
    keys = dead_letter_keys(SourceRecord(topic, partition, offset, None, b"", (), 0))
    if topic not in {".", ".."}:
        assert check_key(keys.value) and check_key(keys.envelope)
    again = dead_letter_keys(SourceRecord(topic, partition, offset, b"other", b"x", (), 9))
    assert again == keys, "the key depends on where the record is, not on what it holds"
    other = dead_letter_keys(SourceRecord(topic, partition, offset + 1, None, b"", (), 0))
    assert other.value != keys.value


@given(request_id=st.text())
def test_result_keys_are_valid_for_any_request_id(request_id: str) -> None:
    key = result_key(request_id)
    assert check_key(key) and key == result_key(request_id)


def test_a_valid_request_id_keeps_its_result_next_to_its_images() -> None:
    assert result_key("r-1") == "r-1/result.avro"
    assert result_key("..").startswith("invalid-request-ids/")
