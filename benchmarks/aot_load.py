"""Where loading an ``engine.aot_compile`` package goes, in a fresh process.

On an H200 a warm start spent 37.5 s in ``aoti_load_package`` for the sd15 UNet package, and
0.02 s for the same load in the process that had just compiled it. Run after a start-up
benchmark filled ``--cache-dir``, this lists what each package holds, then loads each one in a
new child process (with the same Inductor and Triton cache directories a worker sets), timing
the imports, the first load and a second load of the same file (what a process that has loaded
once already pays); ``--profile DIR`` samples each child with py-spy, native frames too. A
child that crashes is reported with its exit status and the traceback ``faulthandler`` wrote.
Prints one JSON report.

    python -m benchmarks.aot_load --cache-dir /tmp/aot-cache --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="aot-load", description=__doc__)
    p.add_argument("--cache-dir", help="an engine.compile_cache_dir, filled")
    p.add_argument("--profile", metavar="DIR", help="py-spy each child into DIR/<package>.txt")
    p.add_argument("--json", help="write the report here")
    p.add_argument("--child", metavar="PACKAGE", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args.child)
    if not args.cache_dir:
        p.error("--cache-dir is required")
    cache = Path(args.cache_dir)
    report: dict[str, Any] = {"packages": {}}
    for path in sorted((cache / "aot").glob("*.pt2")):
        row = _contents(path)
        print(json.dumps({path.name: row}), flush=True)  # before any load that might crash
        row["child"] = _load_in_child(path, cache, args.profile)
        print(json.dumps({path.name: row["child"]}), flush=True)
        report["packages"][path.name] = row
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
        "largest": sorted(((i.file_size, i.filename) for i in infos), reverse=True)[:6],
    }


def _load_in_child(path: Path, cache: Path, profile: str | None) -> dict[str, Any]:
    env = {
        **os.environ,
        "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
        "TRITON_CACHE_DIR": str(cache / "triton"),
    }
    command = [sys.executable, "-X", "faulthandler", "-m", "benchmarks.aot_load"]
    command += ["--child", str(path)]
    spy = shutil.which("py-spy") if profile else None
    if profile and spy:
        Path(profile).mkdir(parents=True, exist_ok=True)
        out = str(Path(profile) / f"{path.stem}.txt")
        command = [spy, "record", "--native", "--rate", "50", "--format", "raw", "-o", out, "--"]
        command += [sys.executable, "-X", "faulthandler", "-m", "benchmarks.aot_load"]
        command += ["--child", str(path)]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    row: dict[str, Any] = {"exit": done.returncode, "wall_s": round(time.perf_counter() - start, 2)}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            row.update(json.loads(line))
    if done.returncode != 0:
        row["stderr_tail"] = done.stderr[-3000:]
    return row


def _child(package: str) -> int:
    began = time.perf_counter()
    import torch

    row: dict[str, Any] = {"import_torch_s": round(time.perf_counter() - began, 2)}
    row["versions"] = {"python": platform.python_version(), "torch": torch.__version__}
    if torch.cuda.is_available():
        start = time.perf_counter()
        torch.zeros(1, device="cuda")
        row["cuda_init_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    import torch._inductor.package  # what aoti_load_package imports first

    row["import_inductor_package_s"] = round(time.perf_counter() - start, 2)
    print(json.dumps(row), flush=True)
    for name in ("first_load_s", "second_load_s"):
        start = time.perf_counter()
        runner = torch._inductor.aoti_load_package(package, run_single_threaded=True)
        row[name] = round(time.perf_counter() - start, 3)
        row["constants"] = len(runner.get_constant_fqns())
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
