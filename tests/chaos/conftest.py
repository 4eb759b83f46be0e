"""Fixtures for the chaos scenarios: the tiny model, workers as processes, repeat counts.

STREAMGEN_CHAOS_RUNS (default 1) repeats every scenario; STREAMGEN_CHAOS_SEED fixes the random
instants (each run prints the seed it used, so a failure can be replayed exactly).
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from streamgen.contracts.request import GenerationRequest
from streamgen.engine.model_init import write_model
from streamgen.local.stack import LocalStack
from streamgen.settings import Settings
from tests.chaos.harness.follow import FleetOutputs
from tests.chaos.harness.workers import WorkerProcess, chaos_settings
from tests.integration.worker.conftest import make_request


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "chaos_run" in metafunc.fixturenames:
        runs = int(os.environ.get("STREAMGEN_CHAOS_RUNS", "1"))
        metafunc.parametrize("chaos_run", range(runs), ids=[f"run{i}" for i in range(runs)])


@pytest.fixture(scope="session")
def chaos_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("chaos-model") / "tiny"
    write_model("tiny", out)
    return out


@dataclass
class ChaosRun:
    """One run of one scenario: settings of its own, its workers, its random instants."""

    stack: LocalStack
    settings: Settings
    log_dir: Path
    rng: random.Random
    workers: list[WorkerProcess] = field(default_factory=list)
    outputs: list[FleetOutputs] = field(default_factory=list)

    def spawn(self, name: str, settings: Settings | None = None) -> WorkerProcess:
        worker = WorkerProcess(settings or self.settings, name, self.log_dir)
        self.workers.append(worker)
        return worker

    def requests(self, count: int, **fields: Any) -> list[GenerationRequest]:
        return [make_request(i, **fields) for i in range(count)]

    def fleet_outputs(self) -> FleetOutputs:
        outputs = FleetOutputs(self.settings)
        self.outputs.append(outputs)
        return outputs

    def logs(self) -> str:
        return "\n".join(w.tail() for w in self.workers)


@pytest.fixture
def chaos(
    stack: LocalStack,
    stack_settings: Settings,
    chaos_model: Path,
    tmp_path: Path,
    chaos_run: int,
) -> Iterator[ChaosRun]:
    seed = int(os.environ.get("STREAMGEN_CHAOS_SEED", random.randrange(2**32)))
    print(f"chaos run {chaos_run}: STREAMGEN_CHAOS_SEED={seed}")
    group = f"chaos-{uuid.uuid4().hex[:8]}"
    run = ChaosRun(
        stack=stack,
        settings=chaos_settings(stack_settings, chaos_model, group),
        log_dir=tmp_path,
        rng=random.Random(seed),
    )
    try:
        yield run
    finally:
        for worker in run.workers:
            worker.stop()
        for outputs in run.outputs:
            outputs.close()
        # Shown by pytest only when the test failed: what each worker said.
        print(run.logs())
