from __future__ import annotations

import signal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamgen.fleet.supervisor import (
    RestartPolicy,
    Supervisor,
    WorkerSlot,
    describe_exit,
    plan_slots,
)


def test_one_pinned_worker_per_gpu_with_its_own_identity_and_port() -> None:
    slots = plan_slots(gpus="0,3", workers=None, device_count=4, host="h", metrics_base_port=9400)
    assert [(s.gpu, s.env, s.worker_id, s.metrics_port) for s in slots] == [
        (0, {"CUDA_VISIBLE_DEVICES": "0"}, "h-gpu0", 9400),
        (3, {"CUDA_VISIBLE_DEVICES": "3"}, "h-gpu3", 9401),
    ]
    assert slots[1].settings_overrides() == {
        "worker.worker_id": "h-gpu3",
        "worker.group_instance_id": "h-gpu3",
        "worker.metrics_port": 9401,
        "engine.device": "cuda",
    }


def test_all_gpus_and_the_cpu_default() -> None:
    assert [s.gpu for s in plan_slots(gpus="all", workers=None, device_count=3, host="h")] == [
        0,
        1,
        2,
    ]
    (cpu,) = plan_slots(gpus=None, workers=None, device_count=0, host="h")
    assert cpu.device == "cpu" and cpu.env == {"CUDA_VISIBLE_DEVICES": ""}
    assert cpu.metrics_port == 0


def test_cpu_workers_are_distinct() -> None:
    slots = plan_slots(gpus=None, workers=3, device_count=8, host="h", metrics_base_port=7000)
    assert [s.worker_id for s in slots] == ["h-cpu0", "h-cpu1", "h-cpu2"]
    assert [s.metrics_port for s in slots] == [7000, 7001, 7002]


@pytest.mark.parametrize(
    ("gpus", "workers", "count", "message"),
    [
        ("all", None, 0, "no CUDA device found"),
        ("0,4", None, 2, "GPU 4 does not exist; this host has 2"),
        ("1,1", None, 2, "GPU 1 listed twice"),
        ("gpu0", None, 2, "expected 'all' or ids"),
        ("0", 2, 2, "exclusive"),
        (None, 0, 0, "--workers must be >= 1"),
    ],
)
def test_bad_plans_name_the_problem(
    gpus: str | None, workers: int | None, count: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        plan_slots(gpus=gpus, workers=workers, device_count=count, host="h")


def test_exit_descriptions() -> None:
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL — out of memory?"
    assert describe_exit(-signal.SIGSEGV) == "killed by SIGSEGV"
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(0) == "exited cleanly"


SLOT = WorkerSlot(index=0, device="cpu", gpu=None, worker_id="h-cpu0", metrics_port=0)


def test_crashes_back_off_exponentially_then_give_up() -> None:
    sup = Supervisor(
        RestartPolicy(initial_backoff_s=1, max_backoff_s=3, max_crashes=4, window_s=100)
    )
    decisions = [sup.exited(SLOT, 3, float(t), stopping=False) for t in range(4)]
    assert [d.action for d in decisions] == ["restart", "restart", "restart", "give_up"]
    assert [d.delay_s for d in decisions[:3]] == [1, 2, 3]
    assert "giving up on it after 4 crashes within 100s" in decisions[3].message
    assert "the other workers keep running" in decisions[3].message


def test_oom_kill_is_named_in_the_log_line() -> None:
    d = Supervisor().exited(SLOT, -9, 0.0, stopping=False)
    assert d.action == "restart"
    assert "killed by SIGKILL — out of memory?" in d.message


def test_clean_exit_and_exits_while_stopping_are_not_restarted() -> None:
    sup = Supervisor()
    assert sup.exited(SLOT, 0, 0.0, stopping=False).action == "finished"
    assert sup.exited(SLOT, -9, 0.0, stopping=True).action == "finished"
    assert sup.crashes(0, 0.0) == 0


@given(st.lists(st.floats(0, 10_000), min_size=1, max_size=30))
def test_only_crashes_inside_the_window_count(times: list[float]) -> None:
    policy = RestartPolicy(max_crashes=1000, window_s=60)
    sup = Supervisor(policy)
    ordered = sorted(times)
    for t in ordered:
        sup.exited(SLOT, 1, t, stopping=False)
    now = ordered[-1]
    assert sup.crashes(0, now) == sum(1 for t in ordered if now - t <= 60)


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="max_crashes must be >= 1"):
        RestartPolicy(max_crashes=0)
    with pytest.raises(ValueError, match="initial_backoff_s"):
        RestartPolicy(initial_backoff_s=5, max_backoff_s=1)


def test_a_misconfigured_worker_is_not_restarted() -> None:
    decision = Supervisor().exited(SLOT, 4, 0.0, stopping=False)
    assert decision.action == "give_up"
    assert "misconfiguration" in decision.message
