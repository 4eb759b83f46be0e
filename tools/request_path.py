"""A request's path from poll to commit: the streamgen files whose code it runs (issue 24).

Measured, not kept by hand. One request goes through the real worker, assembled as in
production (``assemble``) with the in-memory Kafka clients of ``tests/support/memory_kafka.py``,
a file store in a temporary directory and an engine, while a profile function
(``sys.setprofile`` on this thread, ``threading.setprofile`` on the GPU thread and the output
pool, which start after it) notes every file of the package whose code runs on any thread.
Only what runs between two moments counts: the poll that delivers the record and the commit
whose offsets cover it. A first request, of the same shape, goes through before the measured
one, so that what happens once per process (lazy imports, the output pool's threads, the
engine's first batch of a shape) is not counted; code run at import (``<module>``) never is.

A file counts when any of its functions runs, generated ones included: a dataclass's
``__init__`` belongs to the module that defines the class. Telemetry files count like the
others (the worker calls them on every request); the report marks them.

Two engines: :class:`benchmarks.noop_engine.NoopEngine` (no diffusion: the stream-processing
path) and the real ``DiffusionEngine`` on the tiny random SD1.5 pipeline that streamgen writes
(``engine.model_init.write_model("tiny", …)``), the path including the engine.

    python -m tools.request_path            # both
    python -m tools.request_path --engine noop
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "streamgen"
TELEMETRY = "telemetry"  # the room whose files only report
ENGINES = ("noop", "diffusion")
LABELS = {
    "noop": "stream processing (NoopEngine: no diffusion)",
    "diffusion": "with the engine (DiffusionEngine, tiny random SD1.5)",
}
TIMEOUT_S = 60.0  # a request of the tiny model takes about a second on a 2-core CPU


class FileTrace:
    """Which files under ``package_dir`` run code, on any thread, while the window is open.

    Threads started inside :meth:`profiling` are traced too; those started before are not.
    """

    def __init__(self, package_dir: Path = PACKAGE_DIR) -> None:
        self._prefix = str(package_dir) + "/"
        self._root = package_dir.parent
        self.is_open = False
        self.was_opened = False
        self.files: dict[str, str] = {}  # repository path -> the thread that ran it first

    @contextmanager
    def profiling(self) -> Iterator[FileTrace]:
        before = sys.getprofile()
        sys.setprofile(self._event)
        threading.setprofile(self._event)
        try:
            yield self
        finally:
            threading.setprofile(None)
            sys.setprofile(before)

    def open(self) -> None:
        self.is_open = self.was_opened = True

    def close(self, frame: FrameType | None = None) -> None:
        """Close the window; ``frame`` (the caller of the commit) counts as the last file."""
        if frame is not None:
            self._event(frame, "call", None)
        self.is_open = False

    def _event(self, frame: FrameType, event: str, arg: Any) -> None:
        # Every event, C calls included: its frame is the Python code running at that moment.
        if not self.is_open or frame.f_code.co_name == "<module>":
            return
        filename = frame.f_code.co_filename
        if filename.startswith("<"):  # generated code (dataclasses): its defining module
            filename = frame.f_globals.get("__file__") or filename
        if filename.startswith(self._prefix):
            path = Path(filename).relative_to(self._root).as_posix()
            if path not in self.files:
                # The pool's threads are numbered in the order they happened to start.
                self.files[path] = threading.current_thread().name.rstrip("0123456789_")


class RecordWindow:
    """A consumer (delegating to ``consumer``) that opens ``trace`` when a poll delivers the
    record at ``(partition, offset)`` and closes it when a commit covers that offset."""

    def __init__(self, consumer: Any, trace: FileTrace, partition: int, offset: int) -> None:
        self._consumer = consumer
        self._trace = trace
        self._partition = partition
        self._offset = offset

    def configured(self, config: dict[str, Any]) -> RecordWindow:
        self._consumer.configured(config)
        return self

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        messages: list[Any] = self._consumer.consume(num_messages, timeout)
        if any(m.partition() == self._partition and m.offset() == self._offset for m in messages):
            self._trace.open()
        return messages

    def commit(self, *, offsets: list[Any], asynchronous: bool = True) -> Any:
        # A committed offset is the next one to read: it covers every offset below it.
        if self._trace.is_open and any(
            tp.partition == self._partition and tp.offset > self._offset for tp in offsets
        ):
            self._trace.close(sys._getframe(1))
        return self._consumer.commit(offsets=offsets, asynchronous=asynchronous)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


@dataclass(frozen=True)
class RequestPath:
    """The files one request ran through, in order of first execution."""

    engine: str
    files: tuple[tuple[str, str], ...]  # (repository path, first thread)

    @property
    def count(self) -> int:
        return len(self.files)

    @property
    def telemetry(self) -> list[str]:
        return [path for path, _ in self.files if room(path) == TELEMETRY]

    def by_room(self) -> dict[str, list[str]]:
        rooms: dict[str, list[str]] = {}
        for path, _ in self.files:
            rooms.setdefault(room(path), []).append(path)
        return rooms


def room(path: str) -> str:
    """``streamgen/worker/loop.py`` → ``worker``; ``streamgen/errors.py`` → ``errors``."""
    return Path(path).with_suffix("").parts[1]


def in_room(path: str) -> str:
    """``streamgen/engine/families/base.py`` → ``families/base.py``; a top module its name."""
    parts = Path(path).parts
    return "/".join(parts[2:]) or parts[1]


# The driver: (the engine, the window's consumer wrapper) -> drives one warm-up request and
# the measured one through the worker. Passed in, so the same trace measures an older tree.
Driver = Callable[[str, Callable[[Any], RecordWindow]], None]


def measure(engine: str, drive: Driver | None = None) -> RequestPath:
    """The path of the second of two same-shape requests through a worker with ``engine``."""
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}: one of {', '.join(ENGINES)}")
    trace = FileTrace()
    with trace.profiling():
        (drive or drive_worker)(engine, lambda consumer: RecordWindow(consumer, trace, 0, 1))
    if not trace.was_opened:
        raise RuntimeError(f"{engine}: the window never opened (no poll delivered offset 1)")
    if trace.is_open:
        raise RuntimeError(f"{engine}: no commit covered offset 1 before the worker stopped")
    if not trace.files:
        raise RuntimeError(f"{engine}: nothing of streamgen ran between poll and commit")
    return RequestPath(engine, tuple(trace.files.items()))


def drive_worker(engine_kind: str, window: Callable[[Any], RecordWindow]) -> None:
    """Run two requests (offsets 0 and 1, partition 0) through the worker of this tree."""
    from dataclasses import replace

    from benchmarks.noop_engine import NoopEngine
    from streamgen.configuration import load_settings
    from streamgen.contracts.codec import request_codec
    from streamgen.contracts.request import GenerationRequest
    from streamgen.engine.types import Engine
    from streamgen.store import open_store
    from streamgen.store.encode import encode_image
    from streamgen.telemetry.worker_hooks import WorkerHooks
    from streamgen.worker.assembly import assemble
    from streamgen.worker.clients import WorkerSeams
    from tests.support.memory_kafka import MemoryConsumer, MemoryResults

    with tempfile.TemporaryDirectory(prefix="request-path-") as scratch:
        settings = load_settings({"store.url": f"file://{scratch}/store"}, env={})
        store = open_store(settings.store)
        engine: Engine = NoopEngine()
        if engine_kind == "diffusion":
            from streamgen.engine import DiffusionEngine
            from streamgen.engine.model_init import write_model
            from streamgen.store.init_images import InitImageReader

            write_model("tiny", Path(scratch) / "tiny")
            models = {"tiny": str(Path(scratch) / "tiny")}
            settings = replace(settings, engine=replace(settings.engine, models=models))
            engine = DiffusionEngine(
                settings.engine, InitImageReader.from_settings(settings.store, store)
            )
        consumer = MemoryConsumer(settings.topics.requests)
        watched = window(consumer)
        results = MemoryResults()
        parts = assemble(
            settings,
            worker_id="path",
            host="path",
            engine=engine,
            store=store,
            encode=encode_image,
            hooks=WorkerHooks.from_settings(settings, worker_id="path", host="path"),
            seams=WorkerSeams(
                consumer_factory=watched.configured, sender_factory=results.configured
            ),
        )
        codec = request_codec(settings.kafka, settings.topics.requests)
        parts.stage.start()
        try:
            for offset in (0, 1):  # the same shape twice: the first pays for what happens once
                request = GenerationRequest(
                    f"path-{offset}", "a red chair", width=64, height=64, steps=2, seed=offset
                )
                consumer.append(request.request_id.encode(), codec.encode(request))
                until(partial(_committed_past, consumer, offset), parts.loop.step)
                if parts.loop.life.fatal is not None:
                    raise RuntimeError(f"worker failed: {parts.loop.life.fatal}")
        finally:
            parts.loop.close_out(flush_timeout_s=0.0)
            parts.stage.join(30)
            parts.output_pool.shutdown(wait=True)
        # A dead letter's path is not a generated request's: say so rather than count it.
        dead = [key for topic, key, _ in results.records if topic == settings.topics.dead_letter]
        if dead:
            raise RuntimeError(f"requests {dead} were dead-lettered, not generated")


def _committed_past(consumer: Any, offset: int) -> bool:
    """The "broker" holds a commit of partition 0 that covers ``offset``."""
    return bool(consumer.committed_offsets.get(0, 0) > offset)


def until(done: Callable[[], bool], step: Callable[[], None], timeout_s: float = TIMEOUT_S) -> None:
    """Call ``step`` until ``done``; a worker that never gets there is an error, not a hang."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the request was not committed within {timeout_s:.0f} s")
        step()


def render(paths: Sequence[RequestPath]) -> str:
    out = ["a request's path, poll to commit (files whose code ran; tools/request_path.py):"]
    for path in paths:
        out.append(
            f"  {LABELS[path.engine]}: {path.count} files,"
            f" {len(path.telemetry)} of them telemetry (they only report)"
        )
        for name, files in path.by_room().items():
            names = ", ".join(in_room(f) for f in files)
            out.append(f"    {name} ({len(files)}): {names}")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=[*ENGINES, "both"], default="both")
    parser.add_argument("--files", action="store_true", help="one line per file, in order")
    args = parser.parse_args(argv)
    engines = ENGINES if args.engine == "both" else (args.engine,)
    paths = [measure(engine) for engine in engines]
    print(render(paths))
    if args.files:
        for path in paths:
            print(f"\n{path.engine}:")
            for n, (name, thread) in enumerate(path.files, 1):
                print(f"  {n:2d}. {name}  [{thread}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
