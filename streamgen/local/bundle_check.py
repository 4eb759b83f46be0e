"""``scripts/broker-bundle``: build the broker bundle, then prove it runs a broker without Java.

The check starts :class:`~streamgen.local.kafka.KafkaBroker` exactly as ``streamgen dev`` does,
from the unpacked bundle (``STREAMGEN_CACHE_DIR`` and ``STREAMGEN_JAVA``) with no ``java`` on
PATH, formats its storage, creates streamgen's topics, and sends records through it in every
compression codec to a consumer group that commits: what a worker and its producers do.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Consumer, Producer

from streamgen.local.bundle import BUNDLE_NAME, build_bundle, unpack
from streamgen.local.kafka import KafkaBroker, new_cluster_id
from streamgen.local.process import LocalStackError, free_ports
from streamgen.ops.topics import create_topics, plan_topics
from streamgen.settings import TopicSettings

__all__ = ["check_bundle", "main", "path_without_java"]

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")  # each loads its own code in the broker
_RECORDS_PER_CODEC = 20


def path_without_java(path: str) -> str:
    """``path`` without the directories that hold a ``java``, so only the bundle's can run."""
    return os.pathsep.join(
        d for d in path.split(os.pathsep) if d and not (Path(d) / "java").exists()
    )


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in this process's environment (the broker inherits it), then restore."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def check_bundle(env: Mapping[str, str], state_dir: Path) -> float:
    """Run a broker from the bundle that ``env`` names and send records through it.

    Returns the seconds the broker took to answer; raises LocalStackError on any failure.
    """
    kafka_port, controller_port = free_ports(2)
    broker = KafkaBroker(
        home=state_dir / "kafka",
        port=kafka_port,
        controller_port=controller_port,
        cluster_id=new_cluster_id(),
    )
    no_java = path_without_java(os.environ.get("PATH", ""))
    with environment({**env, "PATH": no_java}):
        start = time.monotonic()
        broker.start()
    ready_s = time.monotonic() - start
    try:
        _check_runs_on(broker, Path(env["STREAMGEN_JAVA"]))
        _round_trip(broker.bootstrap_servers)
    finally:
        broker.stop()
    return ready_s


def _check_runs_on(broker: KafkaBroker, java: Path) -> None:
    pid = broker.pid()
    exe = Path(f"/proc/{pid}/exe").resolve() if pid is not None else None
    if exe != java.resolve():
        raise LocalStackError(f"the broker runs on {exe}, not on the bundle's {java}")


def _round_trip(bootstrap: str) -> None:
    tag = uuid.uuid4().hex[:8]
    topics = TopicSettings(
        requests=f"check-{tag}.requests",
        results=f"check-{tag}.results",
        dead_letter=f"check-{tag}.dead-letter",
        partitions=2,
    )
    create_topics(bootstrap, plan_topics(topics))
    sent = set()
    for codec in CODECS:
        producer = Producer(
            {"bootstrap.servers": bootstrap, "compression.type": codec, "enable.idempotence": True}
        )
        for i in range(_RECORDS_PER_CODEC):
            key = f"{codec}-{i}"
            producer.produce(topics.requests, key=key.encode(), value=key.encode() * 50)
            sent.add(key)
        if producer.flush(30):
            raise LocalStackError(f"the bundle's broker did not acknowledge {codec} records")
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{tag}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topics.requests])
    received: set[str] = set()
    deadline = time.monotonic() + 60
    try:
        while received != sent and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            key = (message.key() or b"").decode()
            if message.value() != key.encode() * 50:
                raise LocalStackError(f"record {key} came back altered")
            received.add(key)
        if received != sent:
            raise LocalStackError(f"{len(sent - received)} of {len(sent)} records not consumed")
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="broker-bundle", description=__doc__)
    p.add_argument("--out", type=Path, default=Path(".broker") / BUNDLE_NAME)
    p.add_argument("--check-only", action="store_true", help="check --out, do not rebuild it")
    p.add_argument(
        "--unpack-to",
        type=Path,
        help="unpack here and keep it (STREAMGEN_CACHE_DIR=DIR STREAMGEN_JAVA=DIR/jre/bin/java)",
    )
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="streamgen-bundle-") as scratch:
        if not args.check_only:
            start = time.monotonic()
            sizes = build_bundle(args.out, scratch=Path(scratch))
            print(
                f"built {args.out} in {time.monotonic() - start:.0f} s: "
                f"{_mib(sizes.archive)} (JRE {_mib(sizes.jre)} and jars {_mib(sizes.jars)} "
                "before xz)",
                flush=True,
            )
        start = time.monotonic()
        env = unpack(args.out, args.unpack_to or Path(scratch) / "unpacked")
        exports = " ".join(f"{name}={value}" for name, value in env.items())
        print(f"unpacked in {time.monotonic() - start:.1f} s: {exports}", flush=True)
        ready_s = check_bundle(env, Path(scratch) / "state")
    print(
        f"checked: a broker on the bundle's JRE (no java on PATH) answered in {ready_s:.1f} s, "
        f"took and served records in {', '.join(CODECS)}"
    )
    return 0


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


if __name__ == "__main__":
    sys.exit(main())
