"""The broker bundle's trimming rules and its environment, without building a JRE."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from streamgen.local.bundle import artifact, bundle_env, keeps_entry, trim_jar
from streamgen.local.bundle_check import path_without_java
from streamgen.local.java import JAVA_ENV, java_executable
from streamgen.local.process import LocalStackError


@pytest.mark.parametrize(
    ("jar", "name"),
    [
        ("kafka-clients-4.2.2.jar", "kafka-clients"),
        ("kafka_2.13-4.2.2.jar", "kafka_2.13"),
        ("zstd-jni-1.5.6-10.jar", "zstd-jni"),
        ("HdrHistogram-2.2.2.jar", "HdrHistogram"),
        ("scala-library-2.13.16.jar", "scala-library"),
    ],
)
def test_artifact_drops_the_version(jar: str, name: str) -> None:
    assert artifact(jar) == name


@pytest.mark.parametrize(
    "entry",
    [
        "org/apache/kafka/common/Foo.class",
        "META-INF/MANIFEST.MF",
        "linux/amd64/libzstd-jni-1.5.6-10.so",
        "org/xerial/snappy/native/Linux/x86_64/libsnappyjava.so",
        "net/jpountz/util/linux/amd64/liblz4-java.so",
        "native/libso.so.properties",
    ],
)
def test_keeps_classes_and_linux_x86_64_natives(entry: str) -> None:
    assert keeps_entry(entry)


@pytest.mark.parametrize(
    "entry",
    [
        "linux/aarch64/libzstd-jni-1.5.6-10.so",
        "linux/i386/libzstd-jni-1.5.6-10.so",
        "darwin/x86_64/libzstd-jni-1.5.6-10.dylib",
        "win/amd64/libzstd-jni-1.5.6-10.dll",
        "freebsd/amd64/libzstd-jni-1.5.6-10.so",
        "org/xerial/snappy/native/Linux/x86_64-musl/libsnappyjava.so",
        "org/xerial/snappy/native/Mac/x86/libsnappyjava.jnilib",
        "org/xerial/snappy/native/Windows/x86_64/snappyjava.dll",
        "net/jpountz/util/win32/amd64/liblz4-java.so",
    ],
)
def test_drops_natives_of_other_platforms(entry: str) -> None:
    assert not keeps_entry(entry)


def _jar(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as jar:
        for name, data in entries.items():
            jar.writestr(name, data)
    return path


def test_trim_jar_stores_what_it_keeps_unchanged_and_in_order(tmp_path: Path) -> None:
    entries = {
        "META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n",
        "com/github/luben/zstd/Zstd.class": b"\xca\xfe\xba\xbe" * 100,
        "linux/amd64/libzstd-jni.so": b"\x7fELF amd64" * 100,
        "linux/aarch64/libzstd-jni.so": b"\x7fELF aarch64" * 100,
        "darwin/x86_64/libzstd-jni.dylib": b"macho" * 100,
    }
    source = _jar(tmp_path / "zstd-jni-1.0.jar", entries)
    trim_jar(source, tmp_path / "trimmed.jar")
    with zipfile.ZipFile(tmp_path / "trimmed.jar") as trimmed:
        infos = trimmed.infolist()
        assert [i.filename for i in infos] == [
            "META-INF/MANIFEST.MF",
            "com/github/luben/zstd/Zstd.class",
            "linux/amd64/libzstd-jni.so",
        ]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        assert all(trimmed.read(i) == entries[i.filename] for i in infos)
        assert trimmed.testzip() is None


def test_trim_jar_is_reproducible(tmp_path: Path) -> None:
    """The same entries give the same bytes, whenever the source jar was built."""
    for name, date in (("one", (2020, 5, 1, 12, 0, 0)), ("two", (2024, 9, 30, 8, 30, 0))):
        with zipfile.ZipFile(tmp_path / f"{name}-1.0.jar", "w", zipfile.ZIP_DEFLATED) as jar:
            for entry, data in (("a/A.class", b"x" * 1000), ("b/B.class", b"y")):
                jar.writestr(zipfile.ZipInfo(entry, date_time=date), data)
        trim_jar(tmp_path / f"{name}-1.0.jar", tmp_path / f"{name}.jar")
    assert (tmp_path / "one.jar").read_bytes() == (tmp_path / "two.jar").read_bytes()


def test_bundle_env_names_the_tree_and_its_java(tmp_path: Path) -> None:
    java = tmp_path / "jre" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\n")
    assert bundle_env(tmp_path) == {"STREAMGEN_CACHE_DIR": str(tmp_path), JAVA_ENV: str(java)}


def test_bundle_env_refuses_a_tree_without_java(tmp_path: Path) -> None:
    with pytest.raises(LocalStackError, match="not a broker bundle"):
        bundle_env(tmp_path)


def test_java_executable_prefers_streamgen_java(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    java = tmp_path / "java"
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    monkeypatch.setenv(JAVA_ENV, str(java))
    assert java_executable() == str(java)


def test_java_executable_refuses_a_streamgen_java_that_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    java = tmp_path / "java"
    java.write_text("not a program")  # not executable
    monkeypatch.setenv(JAVA_ENV, str(java))
    with pytest.raises(LocalStackError, match=f"{JAVA_ENV}=.* is not an executable file"):
        java_executable()


def test_java_executable_without_any_java_says_both_ways_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(JAVA_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LocalStackError, match=f"`java` was not found on PATH.*{JAVA_ENV}"):
        java_executable()


def test_path_without_java_drops_only_directories_holding_java(tmp_path: Path) -> None:
    with_java, without = tmp_path / "jdk", tmp_path / "tools"
    with_java.mkdir()
    without.mkdir()
    (with_java / "java").write_text("")
    path = os.pathsep.join([str(with_java), str(without), ""])
    assert path_without_java(path) == str(without)
