"""``engine.aot_compile``: the denoiser step and the VAE decoder compiled ahead of time.

``torch.compile`` traces Python bytecode at every start, and no cache skips that. Here each
module is exported once (``torch.export``) and compiled by AOTInductor into a package under
``<engine.compile_cache_dir>/aot/``; a later start with the same architecture, latent shape,
knobs, dtype, torch and device (``package_key``) loads the package's shared library and traces
nothing. What that saves, and the alternatives weighed, are in docs/decisions.md ("AOTInductor
packages instead of compiling at every start").

- **One package per latent shape, every batch size.** The batch dimension is exported dynamic,
  so one package serves every batch size.
- **With CUDA graphs too.** ``engine.cuda_graphs`` captures the packages per batch bucket
  (``graphs.BucketGraphs``). A package is loaded ``run_single_threaded``: otherwise its runner
  hands each call a model from a pool and waits on an event for one to come back, and a CUDA
  graph capture forbids that wait. The engine calls each module from one thread at a time, so
  the pool buys nothing.
- **The weights stay the module's.** Packages hold code only
  (``aot_inductor.package_constants_in_so=False``); the loaded model reads the live module's
  parameters (``load_constants(..., user_managed=True)``), so GPU memory is not doubled and a
  package does not depend on the weights, only on the architecture: a fine-tuned checkpoint of
  the same architecture reuses it.
- **A package is written whole or not at all** (a temporary file, then a rename), so workers
  sharing the volume never load a half-written one; one that cannot be loaded is compiled again
  and replaced, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from streamgen.engine.conditioning import Conditioning
from streamgen.engine.families import NoisePredictor, PipelineParts
from streamgen.errors import ConfigError
from streamgen.settings import EngineSettings

__all__ = ["COMPILE_MODES", "AotModules", "check_aot_compile", "open_package", "package_key"]

log = logging.getLogger(__name__)

# What a package's code depends on besides the architecture: inductor settings that change it.
_INDUCTOR = {"aot_inductor.package_constants_in_so": False, "conv_1x1_as_mm": True}
# ``engine.compile_mode``: the Inductor options each mode turns on, for ``compile`` and
# ``aot_compile`` alike. max-autotune is torch.compile's "max-autotune-no-cudagraphs" (times
# GEMM templates, tunes kernels' launch parameters by coordinate descent), not "max-autotune":
# Inductor's own CUDA graphs would nest inside streamgen's (graphs.py), which stay the graphs.
COMPILE_MODES: dict[str, dict[str, bool]] = {
    "default": {},
    "max-autotune": {"max_autotune": True, "coordinate_descent_tuning": True},
}
# The attention kernel is left to Inductor's choice for the device, made when the package is
# compiled: an export keeps ``scaled_dot_product_attention`` whole, so an ``sdpa_kernel`` context
# around it would change nothing. Why cuDNN's (its choice on Hopper) is kept although it compiles
# its kernels at every start: docs/decisions.md, "AOT packages keep cuDNN's attention".


def check_aot_compile(settings: EngineSettings) -> None:
    """Refuse what cannot work with ``engine.aot_compile``, naming the setting."""
    if not settings.aot_compile:
        return
    if settings.compile:
        raise ConfigError("engine.aot_compile", "choose aot_compile or compile, not both")
    if settings.cpu_offload:
        raise ConfigError("engine.aot_compile", "cannot compile modules that move between devices")
    if not settings.compile_cache_dir:
        raise ConfigError(
            "engine.aot_compile",
            "needs engine.compile_cache_dir: the compiled modules are kept there",
        )


class _GuidedStep(torch.nn.Module):
    """The exported function: the family's noise predictor (``graphs.eager_noise``), its
    conditioning passed as a dict of tensors, ``copies`` rows of it per latent row."""

    def __init__(self, denoiser: Any, predict: NoisePredictor, copies: int) -> None:
        super().__init__()
        self.denoiser = denoiser  # a submodule, so its weights are the package's constants
        self._predict = predict
        self.copies = copies

    def forward(
        self,
        latents: torch.Tensor,
        t: torch.Tensor,
        guidance: torch.Tensor,
        cond: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        return self._predict(latents, t, Conditioning(cond, self.copies), guidance)


class _Decode(torch.nn.Module):
    def __init__(self, vae: Any) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        images: torch.Tensor = self.vae.decode(latents, return_dict=False)[0]
        return images


def package_key(kind: str, architecture: dict[str, Any], inputs: dict[str, Any], label: str) -> str:
    """A file name that changes whenever the compiled code could: the module's architecture
    (its config), the input shapes but the batch, dtypes, knobs, torch and the device."""
    blob = json.dumps(
        {
            "kind": kind,
            "arch": architecture,
            "inputs": inputs,
            "label": label,
            "cfg": _INDUCTOR,
        },
        sort_keys=True,
        default=str,
    )
    return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:24]}.pt2"


class AotModules:
    """The compiled denoiser step and VAE decoder of one loaded model, per latent shape."""

    def __init__(
        self,
        parts: PipelineParts,
        directory: Path,
        *,
        label: str,
        knobs: str,
        inductor: dict[str, bool] | None = None,
    ) -> None:
        """``label`` names torch and the device, ``knobs`` the speed knobs that change the
        modules (fused QKV, channels-last, attention, compile mode); ``inductor`` adds options
        to the compiler's (``COMPILE_MODES``)."""
        self._parts = parts
        self._inductor = {**_INDUCTOR, **(inductor or {})}
        self._dir = directory / "aot"
        self._label = f"{label}|{knobs}"
        predict = parts.family.noise_predictor(parts.denoiser)
        self._steps = {
            copies: _GuidedStep(parts.denoiser, predict, copies).eval() for copies in (1, 2)
        }
        self._decode = _Decode(parts.vae).eval()
        self._loaded: dict[tuple[str, Any], Callable[..., torch.Tensor]] = {}
        self.compiled = 0  # packages compiled by this process (0 on a warm start)
        self.loaded = 0  # packages loaded from the directory

    @classmethod
    def configured(
        cls, parts: PipelineParts, settings: EngineSettings, label: str
    ) -> AotModules | None:
        """The model's compiled modules if ``engine.aot_compile`` is on (knobs.check_knobs
        made sure ``engine.compile_cache_dir`` is set)."""
        if not settings.aot_compile:
            return None
        knobs = (
            f"attention={settings.attention} fuse_qkv={settings.fuse_qkv} "
            f"channels_last={settings.channels_last} dtype={parts.dtype}"
        )
        if settings.fp8_linear:  # another graph; packages made without it keep their key
            knobs += " fp8_linear=True"
        if settings.compile_mode != "default":  # other kernels; the default keeps its key
            knobs += f" compile_mode={settings.compile_mode}"
        inductor = COMPILE_MODES[settings.compile_mode]
        directory = Path(settings.compile_cache_dir)
        return cls(parts, directory, label=label, knobs=knobs, inductor=inductor)

    def guided(
        self, latents: torch.Tensor, t: torch.Tensor, cond: Conditioning, guidance: torch.Tensor
    ) -> torch.Tensor:
        """What ``graphs.eager_noise`` computes, through the package for this latent shape."""
        # A fresh timestep tensor: the scheduler's is a view at an offset, and the package was
        # compiled for 16-byte aligned inputs (it copied, with a warning per call, otherwise).
        args = [latents, t.clone(), guidance, dict(cond.tensors)]
        shapes = (
            ("latents", tuple(latents.shape[1:])),
            ("cond", (cond.copies, tuple((k, s, str(d)) for k, s, d in cond.signature()))),
            ("dtype", str(latents.dtype)),
            ("t", (str(t.dtype), tuple(t.shape))),
        )
        step = self._steps[cond.copies]
        return self._runner("denoiser", self._parts.denoiser.config, shapes, step, args)(*args)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """``vae.decode(latents)[0]`` through the package for this latent shape."""
        shapes = (("latents", tuple(latents.shape[1:])), ("dtype", str(latents.dtype)))
        return self._runner("vae", self._parts.vae.config, shapes, self._decode, [latents])(latents)

    def _runner(
        self,
        kind: str,
        config: Any,
        shapes: tuple[tuple[str, Any], ...],
        module: torch.nn.Module,
        example: list[Any],
    ) -> Callable[..., torch.Tensor]:
        # Called every denoising step: the package's file name (a hash of the module's
        # config) is computed once per shape, on the first call.
        runner = self._loaded.get((kind, shapes))
        if runner is None:
            path = self._dir / package_key(kind, dict(config), dict(shapes), self._label)
            runner = self._load(path, module) if path.exists() else None
            if runner is not None:
                self.loaded += 1
            else:
                runner = self._compile(path, module, example)
            self._loaded[kind, shapes] = runner
        return runner

    def _load(self, path: Path, module: torch.nn.Module) -> Callable[..., torch.Tensor] | None:
        start = time.perf_counter()
        try:
            runner = open_package(str(path), _device_index(module))
            opened = time.perf_counter()
            # The live module's tensors, not copies: the package holds no weights.
            weights = {**dict(module.named_parameters()), **dict(module.named_buffers())}
            wanted = runner.get_constant_fqns()
            runner.load_constants(
                {name: weights[name] for name in wanted}, check_full_update=True, user_managed=True
            )
        except Exception as exc:  # a torn, foreign or stale file: compile it again
            log.warning("compiled package %s cannot be loaded (%s): compiling it again", path, exc)
            return None
        done = time.perf_counter()
        log.info(
            "loaded compiled %s in %.2f s (package %.2f s, weights %.2f s)",
            path.name,
            done - start,
            opened - start,
            done - opened,
        )
        loaded: Callable[..., torch.Tensor] = runner
        return loaded

    def _compile(
        self, path: Path, module: torch.nn.Module, example: list[Any]
    ) -> Callable[..., torch.Tensor]:
        """Compile, save and load the package; the eager module if any of that fails.

        Compiling is an optimisation: a model torch.export or AOTInductor cannot handle must
        not turn every request of its shape into a failure.
        """
        start = time.perf_counter()
        try:
            self._write_package(path, module, example)
        except Exception:
            log.exception("compiling %s ahead of time failed: this shape runs eagerly", path.name)
            return module
        log.info("compiled %s ahead of time in %.1f s", path.name, time.perf_counter() - start)
        runner = self._load(path, module)
        if runner is None:
            log.error("the package just compiled cannot be loaded: %s runs eagerly", path.name)
            return module
        self.compiled += 1
        return runner

    def _write_package(self, path: Path, module: torch.nn.Module, example: list[Any]) -> None:
        from torch.export import Dim

        # Every input's first dimension is the batch (or twice it): dynamic, so one package
        # serves every batch size; torch.export infers how they relate.
        # Traced at a batch of two whatever the first call's size: a batch of one would be
        # specialised (torch.export fixes sizes 0 and 1), and a batch of 32 or more takes
        # another branch in diffusers' upsampler (a no-op copy at 64 rows and over).
        from torch.utils import _pytree as pytree

        rows = example[0].shape[0]
        example = pytree.tree_map(
            lambda x: _two_batches(x, x.shape[0] // rows) if x.dim() > 0 else x, example
        )
        dynamic = pytree.tree_map(lambda x: {0: Dim.AUTO} if x.dim() > 0 else None, example)
        with torch.no_grad():
            exported = torch.export.export(module, tuple(example), dynamic_shapes=tuple(dynamic))
        self._dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=f".{path.stem}.", suffix=".tmp.pt2")
        os.close(fd)
        try:
            torch._inductor.aoti_compile_and_package(
                exported, package_path=tmp, inductor_configs=dict(self._inductor)
            )
            Path(tmp).replace(path)
        finally:
            Path(tmp).unlink(missing_ok=True)


def open_package(path: str, device_index: int = -1) -> Any:
    """The package's runner, loaded single-threaded (no pool of models, no event waits between
    calls: see above). ``device_index`` is the CUDA device the module's weights are on (-1: the
    current device).

    Built from AOTInductor's loader, not through ``aoti_load_package``: that one then compiles a
    g++ probe per CPU vector ISA, only to warn when the package was compiled on another device,
    which costs seconds in every fresh process. Skipping it loses nothing: a package's file name
    already includes torch's version and the device's name (``package_key``). A torch whose
    loader differs falls back to ``aoti_load_package``. Figures: docs/decisions.md,
    "AOTInductor packages are opened with the loader".
    """
    try:
        from torch.export.pt2_archive._package import AOTICompiledModel

        loader_class = torch._C._aoti.AOTIModelPackageLoader
    except (ImportError, AttributeError) as exc:
        log.debug("AOTInductor's loader not found (%s): aoti_load_package", exc)
        return torch._inductor.aoti_load_package(
            path, run_single_threaded=True, device_index=device_index
        )
    try:  # model name, run_single_threaded, num_runners, device index
        loader = loader_class(path, "model", True, 1, device_index)
    except TypeError as exc:  # another signature
        log.debug("AOTInductor's loader takes other arguments (%s): aoti_load_package", exc)
        return torch._inductor.aoti_load_package(
            path, run_single_threaded=True, device_index=device_index
        )
    return AOTICompiledModel(loader)


def _device_index(module: torch.nn.Module) -> int:
    """The CUDA device of the module's weights, for a worker started on ``cuda:N``; -1 (the
    current device) on the CPU or for a module without parameters."""
    device = next((p.device for p in module.parameters()), None)
    if device is None or device.type != "cuda" or device.index is None:
        return -1
    return device.index


def _two_batches(x: torch.Tensor, per_row: int) -> torch.Tensor:
    """An input of ``per_row`` rows per batch row (2 for CFG conditioning),
    shaped for a batch of two."""
    return torch.cat([x[:per_row]] * 2)
