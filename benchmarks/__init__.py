"""Benchmarks of the whole worker path (docs/benchmarks.md), run through ``scripts/bench-*``.

- :mod:`.pipeline`: the worker's own overhead on CPU against the real broker and MinIO, beside
  raw confluent-kafka consume + produce of the same records (benchmark 1);
- :mod:`.latency`: end-to-end latency under light load versus one generation alone (4);
- :mod:`.e2e`: images/s end to end versus the engine alone, GPU busy fraction (2);
- :mod:`.fleet_scaling`: one worker per GPU versus one GPU (3).

Not tests: each prints a report and can write it as JSON.
"""
