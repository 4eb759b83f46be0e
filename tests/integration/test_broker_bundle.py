"""The broker bundle, built from the caches, runs a real broker with no java on PATH.

The bundle's tree is built here as ``scripts/broker-bundle`` builds it (jlink, trimmed jars),
without the xz step, whose minutes only ``scripts/broker-bundle`` pays (it then unpacks the
archive and runs the same check).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streamgen.local.bundle import JRE_MODULES, UNUSED_JARS, artifact, build_tree, bundle_env
from streamgen.local.bundle_check import check_bundle
from streamgen.local.kafka import prepare_kafka

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_broker_from_the_bundle_serves_producers_and_a_group(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "bundle")
    env = bundle_env(tree)
    # 1. The JRE holds the chosen modules (and what they require), not the whole JDK.
    release = (tree / "jre" / "release").read_text()
    modules = set(release.split('MODULES="')[1].split('"')[0].split())
    assert set(JRE_MODULES) <= modules
    assert not {"java.naming", "java.sql", "jdk.compiler", "jdk.jlink"} & modules
    # 2. The jars: every one the broker loads, natives only for linux-x86-64.
    bundled = {artifact(j.name) for j in next(tree.glob("kafka-*")).joinpath("libs").iterdir()}
    cached = {artifact(j.name) for j in prepare_kafka().glob("*.jar")}
    assert cached >= UNUSED_JARS, "UNUSED_JARS names a jar the pom no longer brings"
    assert bundled == cached - UNUSED_JARS
    # 3. A broker on the bundle's java, the only one on PATH, formats, creates topics, takes
    #    records in every codec and serves a consumer group that commits.
    check_bundle(env, tmp_path / "state")
