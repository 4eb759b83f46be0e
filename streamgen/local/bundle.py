"""A Kafka broker for a Linux x86-64 host without Java: a minimal JRE and the broker's jars.

``scripts/broker-bundle`` builds ``.broker/kafka-broker.tar.xz`` from the local stack's caches
(filling them first, as ``streamgen dev prepare`` does). Unpacked, the bundle is laid out as a
cache dir, so the same :class:`~streamgen.local.kafka.KafkaBroker` finds the jars where it
always looks, and runs on the bundle's ``java``::

    BUNDLE/
      jre/                         jlink image: JRE_MODULES only, no debug symbols, no man pages
      kafka-<version>/libs/*.jar   the broker's jars, trimmed (below)

    STREAMGEN_CACHE_DIR=BUNDLE STREAMGEN_JAVA=BUNDLE/jre/bin/java streamgen dev up ...

The bundle has to fit, with the project and its wheels, into the 64 MiB that one call to the
GPU machine carries, so three things make it small:

- **only the modules the broker needs:** JRE_MODULES (why each is there is written beside it);
  ``scripts/broker-bundle`` starts a broker on the result, so a set that no longer suffices
  fails the build's check;
- **only what the broker loads from the jars:** whole jars it never opens (UNUSED_JARS, read off
  ``-Xlog:class+load`` while a broker formatted its storage, created topics and served
  producers and consumers with every codec and both group protocols) are left out, and of the
  compression libraries' native code only the linux-x86-64 build is kept;
- **xz sees raw bytes:** the JRE's module image is written uncompressed and the jars are
  rewritten with stored (uncompressed) entries, so xz compresses class files once, across the
  whole bundle, instead of failing to compress deflated data a second time.
"""

from __future__ import annotations

import lzma
import re
import shutil
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from streamgen.local.java import JAVA_ENV
from streamgen.local.kafka import kafka_version, pom_path, prepare_kafka
from streamgen.local.process import LocalStackError, require_tool

__all__ = [
    "BUNDLE_NAME",
    "JRE_MODULES",
    "UNUSED_JARS",
    "BundleSizes",
    "artifact",
    "build_bundle",
    "build_tree",
    "bundle_env",
    "keeps_entry",
    "trim_jar",
    "unpack",
]

# java.desktop, java.management and java.security.sasl were each found needed by starting a
# broker without it: java.desktop for java.beans (log4j-core builds a PropertyChangeEvent
# whenever its configuration is set; it brings java.xml, for log4j's configuration factories,
# and java.logging), java.management for the JMX metrics (ManagementFactory at start-up),
# java.security.sasl for the controller's channel. jdk.unsupported (a few classes) is not needed to
# start, but kept: sun.misc.Unsafe is how Kafka unmaps index files and how lz4 and snappy take
# their fast paths. Left out on purpose: java.naming (log4j then warns once that JNDI lookups
# are off, which is what a broker wants), java.sql, jdk.management, and TLS and Kerberos
# (jdk.crypto.ec, java.security.jgss: the bundle's broker listens on 127.0.0.1 in plain text).
JRE_MODULES = (
    "java.base",
    "java.desktop",
    "java.logging",
    "java.management",
    "java.security.sasl",
    "jdk.unsupported",
)
# java.desktop's native code (AWT, fonts, images, sound) is never loaded by a headless broker.
_EXCLUDED_FILES = "glob:/java.desktop/**.so"

# The artifacts (jar names without their version) that no class was loaded from while a broker
# formatted its storage, created topics, took and served records in every compression codec,
# and ran classic and KIP-848 consumer groups and a share group (Kafka 4.2.2): tool-only or
# optional dependencies (OAuth's jose4j, YAML and CSV formats, validators, tiered storage's
# API, Scala reflection) and Kafka's command-line tools (kafka-tools: the cache has them for
# this machine; the GPU host runs only the broker).
UNUSED_JARS = frozenset(
    {
        "caffeine",
        "commons-beanutils",
        "commons-collections",
        "commons-digester",
        "commons-logging",
        "jackson-dataformat-csv",
        "jackson-datatype-jdk8",
        "jose4j",
        "jspecify",
        "kafka-storage-api",
        "kafka-tools",
        "kafka-tools-api",
        "scala-reflect",
        "snakeyaml",
    }
)

_NATIVE_SUFFIXES = (".so", ".dll", ".dylib", ".jnilib")
# How zstd-jni (linux/amd64), snappy-java (Linux/x86_64) and lz4-java (linux/amd64) name the
# directory of the build this bundle is for; "x86_64-musl" and the like are other builds.
_LINUX = "linux"
_X86_64 = frozenset({"amd64", "x86_64"})
# Jar entries and tar members get one fixed time, so a rebuild from the same caches differs
# only where jlink's own output does.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_VERSION = re.compile(r"-\d[^/]*\.jar$")

BUNDLE_NAME = "kafka-broker.tar.xz"
_JDK_HINT = "install a JDK 17+ (Debian/Ubuntu: apt-get install openjdk-17-jdk-headless)"


def artifact(jar_name: str) -> str:
    """The jar's name without its version: ``kafka_2.13-4.2.2.jar`` → ``kafka_2.13``."""
    return _VERSION.sub("", jar_name)


def keeps_entry(name: str) -> bool:
    """Whether a jar entry belongs in the bundle: anything but native code for another platform."""
    if not name.lower().endswith(_NATIVE_SUFFIXES):
        return True
    directories = [part.lower() for part in name.split("/")[:-1]]
    return _LINUX in directories and bool(_X86_64.intersection(directories))


def trim_jar(source: Path, target: Path) -> None:
    """Copy a jar without foreign native code, its entries stored uncompressed, in order."""
    with (
        zipfile.ZipFile(source) as src,
        zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as dst,
    ):
        for info in src.infolist():
            if not keeps_entry(info.filename):
                continue
            entry = zipfile.ZipInfo(info.filename, date_time=_EPOCH)
            entry.external_attr = info.external_attr
            dst.writestr(entry, src.read(info), compress_type=zipfile.ZIP_STORED)


def build_jre(target: Path) -> None:
    """A jlink image of JRE_MODULES from the JDK whose ``jlink`` is on PATH."""
    jlink = require_tool("jlink", _JDK_HINT)
    command = [
        jlink, "--add-modules", ",".join(JRE_MODULES), "--output", str(target),
        "--strip-debug", "--no-man-pages", "--no-header-files",
        f"--exclude-files={_EXCLUDED_FILES}",
        # Uncompressed: xz compresses the raw class files far better than jlink's zip level.
        "--compress=0",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LocalStackError(f"jlink failed (exit {done.returncode}): {done.stderr[-2000:]}")
    # jlink strips Java debug attributes only; the JVM's own symbol table is dead weight.
    strip = shutil.which("strip")
    if strip is not None:
        for library in sorted(target.rglob("*.so")):
            subprocess.run([strip, "--strip-unneeded", str(library)], check=True)


def build_tree(target: Path) -> Path:
    """Lay the bundle out in ``target`` (which must not exist yet); return it."""
    libs = prepare_kafka()  # resolves the jars into the cache first, as `dev prepare` does
    target.mkdir(parents=True)
    build_jre(target / "jre")
    out = target / f"kafka-{kafka_version(pom_path())}" / "libs"
    out.mkdir(parents=True)
    for jar in sorted(libs.glob("*.jar")):
        if artifact(jar.name) not in UNUSED_JARS:
            trim_jar(jar, out / jar.name)
    return target


@dataclass(frozen=True)
class BundleSizes:
    """Bytes: the JRE and the jars as laid out, and the packed archive."""

    jre: int
    jars: int
    archive: int


def build_bundle(archive: Path, *, scratch: Path) -> BundleSizes:
    """Build the tree under ``scratch`` and pack it into ``archive`` (tar, xz level 9)."""
    tree = build_tree(scratch / "bundle")
    sizes = (_bytes(tree / "jre"), _bytes(next(tree.glob("kafka-*"))))
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    with lzma.open(partial, "wb", preset=9) as xz, tarfile.open(fileobj=xz, mode="w") as tar:
        for path in sorted(tree.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(tree)), recursive=False, filter=_plain)
    partial.replace(archive)
    return BundleSizes(jre=sizes[0], jars=sizes[1], archive=archive.stat().st_size)


def unpack(archive: Path, target: Path) -> dict[str, str]:
    """Unpack ``archive`` into ``target``; return the environment that runs the broker from it."""
    with tarfile.open(archive, "r:xz") as tar:
        tar.extractall(target, filter="tar")
    return bundle_env(target)


def bundle_env(tree: Path) -> dict[str, str]:
    """``STREAMGEN_CACHE_DIR`` and ``STREAMGEN_JAVA`` for a bundle laid out in ``tree``."""
    java = tree / "jre" / "bin" / "java"
    if not java.is_file():
        raise LocalStackError(f"{tree} is not a broker bundle: it has no jre/bin/java")
    return {"STREAMGEN_CACHE_DIR": str(tree), JAVA_ENV: str(java)}


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 315532800  # 1980-01-01, as the jar entries
    return info


def _bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
