"""Adapter benchmark (issue 26): what per-request LoRA adapters cost, on a family at its
published size with random weights, through the engine the worker runs.

    python -m benchmarks.adapters --family sdxl --json docs/bench/DATE-h100-adapters-sdxl.json

Builds the family's published architecture with random weights (as ``benchmarks.families``),
writes random LoRA adapters in diffusers/PEFT's safetensors format at the rank and on the
layers the family's adapters usually have (``benchmarks.adapter_files``) into the object store
(``--store``: a ``file://`` directory, or ``s3://BUCKET/PREFIX`` on MinIO with the worker's
``STREAMGEN_STORE_*`` endpoint and keys), and gives the engine the store the way the worker
does (``InitImageReader`` under ``store.adapter_max_bytes``). Then, in one process (``--parts``,
in this order):

- ``batch``: a batch of 8 requests without adapters, 8 with one adapter, 8 with 8 different
  adapters, timed in turn; images/s and the ratios. The issue's goal: 8 different at no less
  than 80 % of one adapter's throughput;
- ``first-use``: adapters loaded one by one as a request's first use loads them, split into
  the store read, the parse (header, tensors, fit to the model, sha256) and the copy to the
  device; then the device memory they hold: the cache's count and, on CUDA, torch's allocated
  and reserved bytes per adapter;
- ``zipf``: a stream of requests each naming one of 1,000 adapters drawn from a Zipf
  distribution, in batches of 8, the engine's cache holding fewer adapters than that
  (``engine.adapter_cache_bytes``): images/s, hit rate, loads, evictions.

Batches with adapters run the denoiser eagerly; ``--knobs`` (``compile,cuda_graphs``, ...)
gives batches without adapters their fast paths, as a worker configured so would. On a
machine without CUDA only ``--tiny`` runs: the same code on the tiny architecture, a
functional check whose figures say nothing of a GPU's.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import torch

from benchmarks.adapter_files import RECIPES, AdapterShelf, denoiser_shape, device_bytes
from benchmarks.adapter_parts import batch_part, first_use_part, warm_up, zipf_part
from benchmarks.families import family_requests, model_directory, progress, versions, write_report
from benchmarks.family_runners import MODEL, RUNS, FamilyRun, knob_settings
from streamgen.configuration import load_settings
from streamgen.contracts.request import Adapter
from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.families import FAMILIES
from streamgen.errors import ConfigError
from streamgen.settings import EngineSettings
from streamgen.store import open_store
from streamgen.store.init_images import InitImageReader

__all__ = ["FAMILY_NAMES", "PARTS", "main"]

PARTS = ("batch", "first-use", "zipf")
FAMILY_NAMES = sorted(name for name, run in RUNS.items() if run.family in RECIPES)
# With --tiny, a budget of as many adapters as the worker's default 2 GiB holds of SDXL's
# rank-32 fp16 ones (88.6 MiB each): the tiny adapters' kilobytes would all fit in 2 GiB.
TINY_CACHE_ADAPTERS = 23


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    run = RUNS[args.family]
    cuda = torch.cuda.is_available()
    # 1. Check the options, and what the model's adapters will weigh against the cache budget,
    #    before a model is loaded.
    if not cuda and not args.tiny:
        print(
            f"{args.family} at its published size needs a CUDA GPU; pass --tiny to run this "
            "benchmark's code on the tiny architecture on the CPU (a functional check)",
            file=sys.stderr,
        )
        return 2
    try:
        _check_inputs(args)
        knobs = [k.strip() for k in args.knobs.split(",") if k.strip()]
        knob_settings(knobs)  # a misspelt knob stops here, before a model is written or loaded
        directory = model_directory(run, args.tiny, cuda)
        dtype = FAMILIES[run.family].cuda_dtype if cuda else torch.float32
        shape = denoiser_shape(directory)  # the unfused layer names adapters are written for
        recipe = RECIPES[run.family]
        rank = args.rank or recipe.rank
        adapter_bytes = device_bytes(shape, recipe.targets, rank, dtype)
        budget = _cache_budget(args, adapter_bytes)
        store_settings = load_settings({"store.url": args.store}).store  # STREAMGEN_STORE_* read
    except ConfigError as exc:
        print(f"{exc}", file=sys.stderr)
        return 2
    # 2. The store and the engine, as the worker assembles them (worker/run.py).
    store = open_store(store_settings)
    store.ensure_ready(create=True)
    files = InitImageReader.from_settings(
        store_settings, store, max_bytes=store_settings.adapter_max_bytes
    )
    size, steps = (args.size or (64 if args.tiny else run.size)), (args.steps or run.steps)
    settings = knob_settings(
        knobs, models={MODEL: str(directory)}, max_batch_size=args.batch,
        adapter_cache_bytes=budget,
    )  # fmt: skip
    progress(f"loading {directory}")
    engine = DiffusionEngine(settings, adapter_files=files)
    if engine.parts(MODEL).dtype != dtype:
        raise RuntimeError(f"the engine runs {engine.parts(MODEL).dtype}, not {dtype}")
    # 3. The parts, in the order asked, the report written after each.
    shelf = AdapterShelf(store, shape, recipe, arch=directory.name.removeprefix("streamgen-bench-"),
                         rank=rank, dtype=dtype, device="cuda" if cuda else "cpu")  # fmt: skip
    report = _report(args, run, shelf, adapter_bytes, budget, size, steps, cuda)
    requests = family_requests(run, size, steps, max(args.batch, args.zipf_requests))
    for part in args.parts:
        progress(f"part {part}")
        if part == "batch":
            report["parts"][part] = batch_part(
                engine, shelf, requests[: args.batch], repeats=args.repeats,
                warm_up_steps=run.warm_up_steps, scale=args.scale,
            )  # fmt: skip
        elif part == "first-use":
            report["parts"][part] = first_use_part(
                engine, shelf, files, requests[0], count=args.first_use
            )
        else:
            if "batch" not in report["parts"]:  # one adapter cached before the stream
                batch = requests[: args.batch]
                adapted = Adapter(shelf.uri("batch-0"), args.scale)
                warm_up(engine, [batch, [r.replace(adapters=(adapted,)) for r in batch]],
                        run.warm_up_steps)  # fmt: skip
            report["parts"][part] = zipf_part(
                engine, shelf, requests[: args.zipf_requests], adapters=args.zipf_adapters,
                exponent=args.zipf_exponent, seed=args.seed, batch_size=args.batch,
                scale=args.scale,
            )  # fmt: skip
        report["settings"]["adapter_file_bytes"] = shelf.file_bytes
        report["settings"]["adapter_files_written"] = shelf.written
        report["settings"]["adapter_files_write_s"] = shelf.write_s
        write_report(args.json, report)  # each part kept, should a later one not finish
    _compare(report)
    write_report(args.json, report)
    print(json.dumps(report, indent=2))
    _summary(report)
    return 0


def _check_inputs(args: argparse.Namespace) -> None:
    """Each bad option named with what it may be, before a model is written or loaded."""
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown or not args.parts:
        raise ConfigError("--parts", f"{unknown or 'none'}; choose among {', '.join(PARTS)}")
    for name in ("batch", "repeats", "first_use", "zipf_adapters", "zipf_requests"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}", "must be at least 1")
    if args.rank < 0 or args.zipf_exponent < 0:
        raise ConfigError("--rank/--zipf-exponent", "must not be negative")
    if "zipf" in args.parts and args.zipf_requests % args.batch:
        raise ConfigError("--zipf-requests", f"must be a multiple of --batch ({args.batch})")


def _cache_budget(args: argparse.Namespace, adapter_bytes: int) -> int:
    """``engine.adapter_cache_bytes``: the worker's default, ``--cache-adapters`` adapters'
    worth, or with ``--tiny`` TINY_CACHE_ADAPTERS'; checked against what the parts need."""
    if args.cache_adapters:
        budget = int(args.cache_adapters) * adapter_bytes
    elif args.tiny:
        budget = TINY_CACHE_ADAPTERS * adapter_bytes
    else:
        budget = EngineSettings().adapter_cache_bytes
    holds = budget // adapter_bytes
    if "batch" in args.parts and holds < args.batch:
        raise ConfigError("--cache-adapters", f"the cache holds {holds} adapters, the batch "
                          f"part needs {args.batch} at once")  # fmt: skip
    if "zipf" in args.parts and holds >= args.zipf_adapters:
        raise ConfigError("--cache-adapters", f"the cache holds {holds} adapters: the Zipf "
                          f"stream needs fewer than its {args.zipf_adapters}")  # fmt: skip
    return budget


def _report(
    args: argparse.Namespace,
    run: FamilyRun,
    shelf: AdapterShelf,
    adapter_bytes: int,
    budget: int,
    size: int,
    steps: int,
    cuda: bool,
) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "family": args.family,
        "architecture": run.tiny if args.tiny else run.arch,
        # The tiny architecture on whatever machine: the code runs end to end; its figures
        # say nothing of a GPU's.
        "figures": "functional check (tiny)" if args.tiny else "performance",
        "settings": {
            "size": size, "steps": steps, "guidance": run.guidance, "scheduler": run.scheduler,
            "batch": args.batch, "repeats": args.repeats, "knobs": args.knobs,
            "adapter_rank": shelf.rank, "adapter_targets": list(RECIPES[run.family].targets),
            "adapter_layers": len(shelf.layers), "adapter_scale": args.scale,
            "adapter_dtype": str(shelf.dtype), "adapter_device_bytes": adapter_bytes,
            "cache_budget_bytes": budget, "cache_holds_adapters": budget // adapter_bytes,
            "store": args.store, "first_use_adapters": args.first_use,
            "zipf_adapters": args.zipf_adapters, "zipf_requests": args.zipf_requests,
            "zipf_exponent": args.zipf_exponent, "seed": args.seed,
        },
        "versions": versions(),
        "parts": {},
    }  # fmt: skip


def _compare(report: dict[str, Any]) -> None:
    """The Zipf stream's images/s against the batch part's, where both ran."""
    parts = report["parts"]
    if "batch" in parts and "zipf" in parts:
        zipf = parts["zipf"]["images_per_s"]
        runs = parts["batch"]["runs"]
        parts["zipf"]["vs_batch"] = {
            name: zipf / runs[name]["images_per_s"] for name in ("none", "one", "different")
        }


def _summary(report: dict[str, Any]) -> None:
    """The figures and ratios, a line each, after the JSON."""
    parts = report["parts"]
    if report["figures"] != "performance":
        print(f"{report['figures']}: not performance figures")
    if "batch" in parts:
        batch = parts["batch"]
        for name, row in batch["runs"].items():
            print(f"batch of {batch['batch_size']}, adapters {name}: "
                  f"{row['images_per_s']:.3f} images/s ({row['seconds']:.3f} s)")  # fmt: skip
        ratios = ", ".join(f"{k} {v:.3f}" for k, v in batch["ratios"].items())
        print(f"ratios: {ratios}; goal (different >= {batch['goal']['different_vs_one_at_least']}"
              f" x one): {'met' if batch['goal']['met'] else 'NOT met'}")  # fmt: skip
    if "first-use" in parts:
        median, memory = parts["first-use"]["median"], parts["first-use"]["memory"]
        print(f"first use (median): {median['total_s']:.4f} s = fetch {median['fetch_s']:.4f}"
              f" + parse {median['parse_s']:.4f} + copy {median['copy_s']:.4f}")  # fmt: skip
        print(f"memory per cached adapter: {memory}")
    if "zipf" in parts:
        zipf = parts["zipf"]
        unbounded = zipf["hit_rate_unbounded_cache"]
        print(f"zipf over {zipf['adapters']} adapters: {zipf['images_per_s']:.3f} images/s, "
              f"hit rate {zipf['hit_rate']:.3f} (a cache holding all: {unbounded:.3f}), "
              f"{zipf['evictions']} evictions")  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench-adapters", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--family", choices=FAMILY_NAMES, required=True)
    p.add_argument("--tiny", action="store_true", help="the tiny architecture (CPU check)")
    p.add_argument("--parts", type=lambda s: [x for x in s.split(",") if x], default=list(PARTS),
                   help=f"which measurements, in order (default: {','.join(PARTS)})")  # fmt: skip
    p.add_argument("--size", type=int, default=0, help="default: the family's usual size")
    p.add_argument("--steps", type=int, default=0, help="default: the family's usual steps")
    p.add_argument("--batch", type=int, default=8, help="requests per batch (default: 8)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds of the batch part")
    p.add_argument("--rank", type=int, default=0,
                   help="adapter rank (default: SDXL, SD1.5 32; FLUX.1 16)")  # fmt: skip
    p.add_argument("--scale", type=float, default=1.0, help="each request's adapter scale")
    p.add_argument("--cache-adapters", type=int, default=0,
                   help="engine.adapter_cache_bytes as this many adapters (default: the "
                        f"worker's 2 GiB; with --tiny {TINY_CACHE_ADAPTERS} adapters)")  # fmt: skip
    p.add_argument("--first-use", type=int, default=8, help="adapters loaded in first-use")
    p.add_argument("--zipf-adapters", type=int, default=1000)
    p.add_argument("--zipf-requests", type=int, default=160)
    p.add_argument("--zipf-exponent", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=26, help="the Zipf stream's draw")
    p.add_argument("--knobs", default="",
                   help="engine settings, comma-separated (compile,cuda_graphs): the fast "
                        "paths batches without adapters keep")  # fmt: skip
    p.add_argument("--store", default="file:///tmp/streamgen-bench-adapters",
                   help="where the adapters are written and read: file://DIR or "
                        "s3://BUCKET/PREFIX (MinIO: STREAMGEN_STORE_ENDPOINT, _ACCESS_KEY, "
                        "_SECRET_KEY)")  # fmt: skip
    p.add_argument("--json", help="write the report here (docs/bench/...)")
    return p


if __name__ == "__main__":
    sys.exit(main())
