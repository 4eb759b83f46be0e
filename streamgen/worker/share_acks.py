"""Share mode's bookkeeping: which records of the current poll are still held, and the
acknowledgement each one gets (pure: no Kafka inside).

A share group hands a worker records under a time-limited lock, and in explicit mode every
record a poll returned must be acknowledged before the next poll. So the worker works in
*rounds*: one poll, then each record of it is held until it ends one way:

- ``ACCEPT`` once its result or dead letter is durable (the broker acknowledged it): the same
  moment the consumer-group loop would let its offset be committed (DESIGN invariant 2);
- ``RELEASE`` when the worker will not finish it (a stop, a transient intake failure, a round
  that overran its lock): the broker hands it out again, to this worker or another;
- ``REJECT`` is never used: a record that can never succeed is dead-lettered, then accepted,
  so nothing leaves the queue without a trace.

Each round is a new *generation* of the tickets it hands out, as a partition assignment is for
:class:`~streamgen.worker.offsets.OffsetTracker`: a completion from an earlier round, or for a
record released since, is stale and changes nothing, and the GPU thread drops work whose ticket
is no longer current (``is_current``, safe from any thread).
"""

from __future__ import annotations

from enum import StrEnum

from streamgen.worker.offsets import Ticket

__all__ = ["Ack", "RecordKey", "ShareLedger"]

RecordKey = tuple[str, int, int]  # topic, partition, offset


class Ack(StrEnum):
    ACCEPT = "accept"
    RELEASE = "release"


class ShareLedger:
    """Owned by the loop's thread; other threads may only ask :meth:`is_current`."""

    def __init__(self) -> None:
        self._round = 0
        self._held: dict[RecordKey, int] = {}  # record -> the round that holds it
        self._acks: list[tuple[RecordKey, Ack]] = []

    def new_round(self) -> int:
        """Start a round: the previous one must have ended (every record acknowledged)."""
        if self._held or self._acks:
            raise RuntimeError(
                f"a new poll with {len(self._held)} records held and {len(self._acks)} "
                "acknowledgements unsent: every record of a poll is acknowledged before the next"
            )
        self._round += 1
        return self._round

    def hold(self, topic: str, partition: int, offset: int) -> Ticket:
        key = (topic, partition, offset)
        if key in self._held:
            raise ValueError(f"record {key} is already held in round {self._held[key]}")
        self._held[key] = self._round
        return Ticket(topic, partition, offset, self._round)

    def is_current(self, ticket: Ticket) -> bool:
        """One dict lookup (atomic in CPython): the ticket's record is still held by its round."""
        return self._held.get((ticket.topic, ticket.partition, ticket.offset)) == ticket.generation

    def complete(self, ticket: Ticket) -> bool:
        """The ticket's outputs are durable: ACCEPT it. False (no effect) if it is stale."""
        if not self.is_current(ticket):
            return False
        del self._held[(ticket.topic, ticket.partition, ticket.offset)]
        self._acks.append(((ticket.topic, ticket.partition, ticket.offset), Ack.ACCEPT))
        return True

    def release(self, key: RecordKey) -> None:
        """The worker will not finish this record: RELEASE it (its work, if any, is dropped)."""
        if self._held.pop(key, None) is None:
            raise ValueError(f"record {key} is not held: released twice or never held")
        self._acks.append((key, Ack.RELEASE))

    def release_all(self) -> int:
        """Release every record still held; how many there were."""
        held = list(self._held)
        for key in held:
            self.release(key)
        return len(held)

    def held(self) -> int:
        return len(self._held)

    def take_acks(self) -> list[tuple[RecordKey, Ack]]:
        """The acknowledgements decided since the last call, oldest first."""
        acks, self._acks = self._acks, []
        return acks
