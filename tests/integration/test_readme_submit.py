"""The README's catalogue example, run as written against the real broker and MinIO, so the
documentation cannot drift from the command: the prompts come from the template over each CSV
row, the other columns ride in metadata, and --download fetches what the results point at."""

from __future__ import annotations

import csv
import shlex
from pathlib import Path

import pytest

from streamgen.contracts.codec import request_codec
from streamgen.contracts.result import GenerationResult
from streamgen.settings import Settings
from streamgen.store import open_store
from tests.integration.test_submit import WORKER, produce_results, settings, start_submit
from tests.support.kafka import consume_all

__all__ = ["settings"]  # the fixture, imported for its name

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- run against the real stack by tests/integration/test_readme_submit.py"


def readme_command() -> list[str]:
    """The shell block after the marker, continuation lines joined, split as a shell would."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index(MARKER) :]
    block = block[block.index("```sh\n") + len("```sh\n") :]
    block = block[: block.index("```")]
    return shlex.split(block.replace("\\\n", " "))


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_the_readme_catalogue_example(settings: Settings, tmp_path: Path) -> None:
    command = readme_command()
    assert command[:2] == ["streamgen", "submit"]
    args = command[2:]
    catalogue = ROOT / option(args, "--csv")
    template = option(args, "--template")
    args[args.index("--csv") + 1] = str(catalogue)  # the README runs from the repository root
    images = tmp_path / "images"
    args[args.index("--download") + 1] = str(images)
    with catalogue.open(newline="") as lines:
        rows = list(csv.DictReader(lines))

    # As after `eval "$(streamgen dev env)"`: the store comes from the environment.
    env = {"STREAMGEN_STORE_URL": settings.store.url}
    proc = start_submit(settings, *args, "--timeout", "90", env=env)
    try:
        messages = consume_all(
            settings.kafka.bootstrap_servers, settings.topics.requests, expected=len(rows)
        )
        codec = request_codec(settings.kafka, settings.topics.requests)
        requests = {r.metadata["sku"]: r for r in (codec.decode(m.value()) for m in messages)}
        assert set(requests) == {row["sku"] for row in rows}
        for row in rows:
            request = requests[row["sku"]]
            assert request.prompt == template.format_map(row)
            assert (request.width, request.height, request.steps, request.seed) == (
                512, 512, 30, 1,
            )  # fmt: skip
        # Answer as a worker would: an image in the store, a SUCCEEDED result pointing at it.
        store = open_store(settings.store)
        store.ensure_ready()
        results = []
        for request in requests.values():
            image = store.put(
                f"{request.request_id}/0.png",
                b"\x89PNG " + request.request_id.encode(),
                index=0,
                content_type="image/png",
                metadata={},
            )
            results.append(
                GenerationResult(request.request_id, "SUCCEEDED", WORKER, images=(image,))
            )
        produce_results(settings, results)
        stdout, stderr = proc.communicate(timeout=120)
    except BaseException:
        proc.kill()
        print("submit's output:", *proc.communicate(), sep="\n")
        raise
    assert proc.returncode == 0, stderr
    assert f"succeeded: {len(rows)}" in stdout.splitlines()
    for request in requests.values():
        written = images / f"{request.request_id}-0.png"
        assert written.read_bytes() == b"\x89PNG " + request.request_id.encode()
