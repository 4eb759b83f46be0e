"""Reading DescribeShareGroupOffsets answers (versions 0 and 1) as the broker writes them."""

from __future__ import annotations

import pytest

from streamgen.kafka_protocol.share_offsets import ShareOffset, ShareOffsetsError, _offsets, _Retry
from streamgen.kafka_protocol.wire import Reader, Writer

T = "streamgen.requests"


def answer(
    partitions: list[tuple[int, int, int, int]], *, version: int, group_error: int = 0
) -> Reader:
    """A response body: one group, one topic, (partition, start, lag, error) each."""
    w = Writer().int32(0).uvarint(2).compact_string("g").uvarint(2).compact_string(T)
    w.int64(0).int64(0)  # the topic id
    w.uvarint(len(partitions) + 1)
    for partition, start, lag, error in partitions:
        w.int32(partition).int64(start).int32(7)
        if version >= 1:
            w.int64(lag)
        w.int16(error).compact_string(None).no_tags()
    w.no_tags().int16(group_error).compact_string(None).no_tags().no_tags()
    return Reader(w.build())


TPS = [(T, 0), (T, 1), (T, 2)]


def test_version_1_gives_start_and_lag_and_version_0_the_start_alone() -> None:
    rows = [(0, 5, 3, 0), (1, 12, 0, 0)]
    assert _offsets(answer(rows, version=1), "g", TPS, 1) == {
        (T, 0): ShareOffset(5, 3),
        (T, 1): ShareOffset(12, 0),
        (T, 2): ShareOffset(),  # not in the answer: never read
    }
    assert _offsets(answer(rows, version=0), "g", TPS, 0)[(T, 0)] == ShareOffset(5, None)


def test_a_partition_not_read_yet_has_neither() -> None:
    found = _offsets(answer([(0, -1, -1, 0)], version=1), "g", TPS, 1)
    assert found[(T, 0)] == ShareOffset()


def test_an_unknown_group_is_all_unread() -> None:
    found = _offsets(answer([], version=1, group_error=69), "g", TPS, 1)
    assert found == dict.fromkeys(TPS, ShareOffset())


def test_a_refusal_is_named_and_a_moving_coordinator_is_asked_again() -> None:
    with pytest.raises(ShareOffsetsError, match=r"group 'g'.*GROUP_AUTHORIZATION_FAILED"):
        _offsets(answer([], version=1, group_error=30), "g", TPS, 1)
    with pytest.raises(ShareOffsetsError, match=r"\[0\].*TOPIC_AUTHORIZATION_FAILED"):
        _offsets(answer([(0, 0, 0, 29)], version=1), "g", TPS, 1)
    with pytest.raises(_Retry, match="NOT_COORDINATOR"):
        _offsets(answer([], version=1, group_error=16), "g", TPS, 1)
