"""Scenario 10: records at the edges of what the fleet accepts, among good ones — a value just
under the broker's size limit (its dead letter cannot be published as it is) and img2img
requests naming init images the worker must not read (other schemes, other buckets, escapes).
No worker may exit: each bad record ends as a dead letter (+ FAILED result when it carries a
request id), the good ones succeed, nothing is redone."""

from __future__ import annotations

import hashlib
import os

import pytest

from streamgen.contracts import dead_letter as dl
from streamgen.store import open_store
from tests.chaos.conftest import ChaosRun
from tests.chaos.harness.figures import record_verdict
from tests.chaos.harness.load import LoadGenerator
from tests.chaos.harness.oracle import CommitSampler, judge, settle
from tests.integration.worker.conftest import make_request

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

SETTLE_TIMEOUT_S = 120.0
# Under the local broker's 1,048,588-byte limit, over librdkafka's default message.max.bytes
# (1,000,000) before the dead-letter headers are even added.
NEAR_LIMIT_BYTES = 1_040_000


def test_scenario_10_records_at_the_edges_never_stop_a_worker(chaos: ChaosRun) -> None:
    settings = chaos.settings
    outputs = chaos.fleet_outputs()
    bucket = settings.store.url.removeprefix("s3://").split("/")[0]
    foreign = [
        "file:///etc/passwd",
        "http://127.0.0.1:1/init.png",
        "ftp://example.com/init.png",
        "s3://some-other-bucket/secret.png",
        f"s3://{bucket}/../other/secret.png",
        f"s3://{bucket}/%2e%2e/secret.png",
        "/etc/hostname",
    ]
    bad = [
        make_request(100 + i, task="img2img", init_image_uri=uri, strength=0.5)
        for i, uri in enumerate(foreign)
    ]
    huge = os.urandom(NEAR_LIMIT_BYTES)
    good = chaos.requests(10)
    with LoadGenerator(settings) as load, CommitSampler(settings, outputs) as sampler:
        worker = chaos.spawn("w1")
        load.send_raw(b"bad:near-limit", huge, request_id=None)
        for i, request in enumerate(good):
            load.send(request)
            if i < len(bad):
                load.send(bad[i])
        load.flush()
        recovery = settle(settings, lambda: load.acked, outputs, SETTLE_TIMEOUT_S)
        assert worker.alive() and worker.log().count("consuming") == 1, "the worker restarted"
        assert worker.terminate() == 0, worker.tail()
    verdict = judge(settings, load.acked, outputs, sampler.samples)
    record_verdict("10 edge records", verdict, faults=1 + len(bad), recovery_s=[recovery],
                   dead_letters_expected=1 + len(bad))  # fmt: skip
    verdict.assert_safe(max_duplicates=0)
    assert verdict.dead_letters == 1 + len(bad)
    statuses = {r.request_id: r.status for r in outputs.results()}
    assert statuses == {
        **{r.request_id: "SUCCEEDED" for r in good},
        **{r.request_id: "FAILED" for r in bad},
    }
    letters = {d.key: d for d in outputs.dead_letters()}
    for request in bad:
        letter = letters[request.request_id.encode()]
        assert letter.stage == "validate", letter.headers
        # The same words whatever the URI names: no oracle for what exists where.
        assert "allowed prefixes" in letter.headers[dl.H_MESSAGE], letter.headers
    near_limit = letters[b"bad:near-limit"]
    assert near_limit.stage == "decode"
    assert near_limit.headers[dl.H_CLAIM_VALUE_SHA256] == hashlib.sha256(huge).hexdigest()
    kept = open_store(settings.store).get(near_limit.headers[dl.H_CLAIM_VALUE_URI])
    assert kept == huge, "the original bytes are kept behind the claim check"
