"""Where loading an ``engine.aot_compile`` package goes, in a fresh process.

On an H200 a warm start spent 37.5 s in ``aoti_load_package`` for the sd15 UNet package, and
0.03 s for the same load in the process that had just compiled it. Run after a start-up
benchmark filled ``--cache-dir``, this lists what each package holds and times, in one new
process: the imports, each package's first load, a second load of the same file (what a
process that has loaded once already pays), the unzip on its own and, if that takes a second
or more, a load from the package unpacked to a directory. Prints one JSON report.

    python -m benchmarks.aot_load --cache-dir /tmp/aot-cache --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="aot-load", description=__doc__)
    p.add_argument("--cache-dir", required=True, help="an engine.compile_cache_dir, filled")
    p.add_argument("--json", help="write the report here")
    args = p.parse_args(argv)
    packages = sorted((Path(args.cache_dir) / "aot").glob("*.pt2"))
    report: dict[str, Any] = {"packages": {}}
    began = time.perf_counter()
    import torch

    report["import_torch_s"] = round(time.perf_counter() - began, 2)
    if torch.cuda.is_available():
        torch.zeros(1, device="cuda")
    start = time.perf_counter()
    import torch._inductor.package  # what aoti_load_package imports first

    report["import_inductor_package_s"] = round(time.perf_counter() - start, 2)
    report["versions"] = {"python": platform.python_version(), "torch": torch.__version__}
    for path in packages:
        row = _contents(path)
        row["first_load_s"] = _timed_load(str(path))
        row["second_load_s"] = _timed_load(str(path))
        with tempfile.TemporaryDirectory() as unpacked:
            start = time.perf_counter()
            zipfile.ZipFile(path).extractall(unpacked)
            row["unzip_s"] = round(time.perf_counter() - start, 2)
            if row["unzip_s"] >= 1.0:  # only worth a third load if unzipping is a real cost
                try:
                    row["load_from_directory_s"] = _timed_load(unpacked)
                except Exception as exc:  # older torch: only .pt2 files
                    row["load_from_directory_s"] = f"{type(exc).__name__}: {exc}"[:300]
        report["packages"][path.name] = row
        print(json.dumps({path.name: row}), flush=True)
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def _contents(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    by_suffix: dict[str, list[int]] = {}
    for info in infos:
        by_suffix.setdefault(Path(info.filename).suffix or "(none)", []).append(info.file_size)
    return {
        "bytes": path.stat().st_size,
        "files": len(infos),
        "by_suffix": {k: {"files": len(v), "bytes": sum(v)} for k, v in sorted(by_suffix.items())},
        "largest": sorted(((i.file_size, i.filename) for i in infos), reverse=True)[:5],
    }


def _timed_load(where: str) -> float:
    import torch

    start = time.perf_counter()
    runner = torch._inductor.aoti_load_package(where, run_single_threaded=True)
    took = time.perf_counter() - start
    del runner
    return round(took, 3)


if __name__ == "__main__":
    sys.exit(main())
