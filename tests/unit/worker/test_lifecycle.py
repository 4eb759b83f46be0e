"""The worker's one lifecycle: phases in the drawn order only, one stop request (twice: force),
the first fatal error decides the exit, and /ready and the exit code read the same state."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamgen.exit_codes import EXIT_CONFIG, EXIT_FATAL, EXIT_INCOMPLETE_DRAIN, EXIT_UNEXPECTED
from streamgen.worker.lifecycle import Exit, Lifecycle, Phase


def serving() -> Lifecycle:
    life = Lifecycle()
    life.advance(Phase.WARMING)
    life.advance(Phase.JOINING)
    life.joined()
    return life


def test_ready_only_once_warmed_up_and_joined_and_not_once_a_stop_is_asked_for() -> None:
    life = Lifecycle()
    assert life.readiness() == (False, "starting")
    life.advance(Phase.WARMING)
    assert life.readiness() == (False, "warming up")
    life.advance(Phase.JOINING)
    assert life.readiness() == (False, "joining the consumer group")
    life.joined()
    assert life.phase is Phase.READY and life.readiness() == (True, "ready")
    life.joined()  # every later assignment changes nothing
    assert life.phase is Phase.READY
    assert life.request_stop() is False  # the first request: drain
    assert life.readiness() == (False, "stopping") and not life.serving
    assert life.phase is Phase.READY  # the loop moves it on, when its turn ends


def test_a_drain_that_finishes_stops_cleanly() -> None:
    life = serving()
    life.request_stop()
    life.advance(Phase.DRAINING)
    assert not life.closing
    life.advance(Phase.CLOSING)
    assert life.closing and life.wait_closing(0.0)
    assert life.finish(complete=True) == Exit(0, "drained cleanly")
    assert life.phase is Phase.STOPPED and life.readiness() == (False, "stopped")


def test_a_second_stop_request_forces_and_unfinished_work_exits_2() -> None:
    life = serving()
    assert life.request_stop() is False
    assert life.request_stop() is True and life.forced
    life.advance(Phase.DRAINING)
    life.advance(Phase.CLOSING)
    assert life.finish(complete=False).code == EXIT_INCOMPLETE_DRAIN
    assert life.phase is Phase.FAILED


def test_the_first_fatal_error_decides_and_skips_the_drain() -> None:
    life = serving()
    first, second = RuntimeError("device lost"), RuntimeError("its consequence")
    life.fail(first)
    life.fail(second)
    assert life.fatal is first and not life.serving
    assert life.readiness() == (False, "stopping")
    life.advance(Phase.CLOSING)  # no drain: a broken GPU is not waited for
    assert life.finish(complete=False) == Exit(EXIT_FATAL, "fatal error: device lost")
    assert life.phase is Phase.FAILED


def test_a_fatal_error_after_the_end_changes_nothing() -> None:
    """Found by the sequence test below: a straggling thread's error after the exit was said."""
    life = serving()
    life.request_stop()
    life.advance(Phase.DRAINING)
    life.advance(Phase.CLOSING)
    assert life.finish(complete=True).code == 0
    life.fail(RuntimeError("late"))
    assert life.fatal is None and life.exit == Exit(0, "drained cleanly")
    assert life.phase is Phase.STOPPED


def test_a_fatal_error_during_the_drain_still_exits_3() -> None:
    life = serving()
    life.request_stop()
    life.advance(Phase.DRAINING)
    life.fail(RuntimeError("retry budget exhausted"))
    life.advance(Phase.CLOSING)
    assert life.finish(complete=True).code == EXIT_FATAL


def test_misconfiguration_and_bugs_end_in_failed_with_their_codes() -> None:
    life = Lifecycle()
    assert life.refuse_start("engine.models") == Exit(
        EXIT_CONFIG, "misconfiguration at start-up: engine.models"
    )
    assert life.phase is Phase.FAILED and life.closing
    crashed = serving()
    assert crashed.crash(KeyError("x")).code == EXIT_UNEXPECTED
    assert crashed.phase is Phase.FAILED
    assert crashed.crash(ValueError("later")).code == EXIT_UNEXPECTED  # the first one stays


@pytest.mark.parametrize(
    ("steps", "to"),
    [
        ([], Phase.READY),
        ([], Phase.DRAINING),
        ([Phase.WARMING], Phase.READY),
        ([Phase.WARMING, Phase.JOINING, Phase.DRAINING], Phase.JOINING),
        ([Phase.WARMING, Phase.JOINING, Phase.CLOSING], Phase.DRAINING),
    ],
)
def test_an_order_the_diagram_does_not_draw_is_refused(steps: list[Phase], to: Phase) -> None:
    life = Lifecycle()
    for step in steps:
        life.advance(step)
    with pytest.raises(RuntimeError, match=f"cannot move to {to.name}"):
        life.advance(to)


def test_closing_wakes_a_waiting_thread_at_once() -> None:
    life = serving()
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(life.wait_closing(60.0)))
    waiter.start()
    life.advance(Phase.CLOSING)
    waiter.join(10.0)
    assert woke == [True]


OPERATIONS = st.lists(
    st.sampled_from(["advance", "joined", "stop", "fail", "finish_complete", "finish_partial"]),
    max_size=20,
)


@settings(max_examples=1000)  # cheap: each example is a few method calls
@given(OPERATIONS)
def test_any_sequence_keeps_ready_and_exit_consistent(operations: list[str]) -> None:
    """Whatever happens in whatever order: ready only in READY with no stop and no fatal, an
    exit once ended, and a fatal error always exits 3."""
    life = Lifecycle()
    order = [Phase.WARMING, Phase.JOINING, Phase.DRAINING, Phase.CLOSING]
    for op in operations:
        if op == "advance" and order:
            life.advance(order.pop(0))
        elif op == "joined":
            life.joined()
        elif op == "stop":
            life.request_stop()
        elif op == "fail":
            life.fail(RuntimeError("fatal"))
        elif op.startswith("finish") and life.phase is Phase.CLOSING:
            life.finish(complete=op == "finish_complete")
        ready, _ = life.readiness()
        assert ready == (
            life.phase is Phase.READY and not life.stop_requested and life.fatal is None
        )
        ended = life.phase in (Phase.STOPPED, Phase.FAILED)
        assert (life.exit is not None) == ended
        if ended and life.fatal is not None:
            assert life.exit is not None and life.exit.code == EXIT_FATAL
        if life.phase is Phase.STOPPED:
            assert life.exit == Exit(0, "drained cleanly")
