"""Random-weight FLUX.2 [klein] pipelines: a tiny one for CPU tests, the published 4B and 9B
architectures for benchmarks. Nothing is downloaded; the tokenizer is built here
(``tokenizers.qwen_tokenizer``).

The published configurations are Black Forest Labs' ``Klein4BParams`` and ``Klein9BParams``
(``flux2/src/flux2/model.py`` of their reference code; the ``black-forest-labs/FLUX.2-klein-4B``
and ``-9B`` repositories' ``transformer/config.json`` hold the same numbers in diffusers' names):

- 4B: 5 double-stream and 20 single-stream blocks, 24 heads of 128, joint attention dim 7680
  (3 x Qwen3-4B's 2560); 9B: 8 and 24 blocks, 32 heads of 128, 12288 (3 x Qwen3-8B's 4096);
  both 128 input channels (32 latent channels in 2x2 patches), rotary axes (32, 32, 32, 32),
  theta 2000, MLP ratio 3, no guidance embedding (timestep- and guidance-distilled);
- text encoders: Qwen3-4B and Qwen3-8B (36 layers each), as their ``config.json`` say;
- the VAE: ``AutoencoderKLFlux2``'s defaults (32 latent channels, batch-norm statistics over
  the 128 patch channels);
- the scheduler: FLUX.2's ``FlowMatchEulerDiscreteScheduler`` config (dynamic, exponential
  shift), as ``diffusers/FLUX.2-dev-*``'s ``scheduler_config.json`` holds it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from streamgen.engine.families.random_weights import building
from streamgen.engine.families.tokenizers import QWEN_PAD, qwen_tokenizer

__all__ = ["FLUX2_ARCHS", "build_flux2", "write_flux2"]

SEED = 0


@dataclass(frozen=True)
class Flux2Arch:
    transformer: dict[str, Any]
    vae: dict[str, Any]
    text_encoder: dict[str, Any]
    tokens: int  # the tokenizer's model_max_length: the prompt's tokens, chat template included


def _transformer(double: int, single: int, heads: int, text_dim: int) -> dict[str, Any]:
    return {
        "patch_size": 1,
        "in_channels": 128,
        "num_layers": double,
        "num_single_layers": single,
        "attention_head_dim": 128,
        "num_attention_heads": heads,
        "joint_attention_dim": 3 * text_dim,  # three hidden layers of the text encoder, stacked
        "timestep_guidance_channels": 256,
        "mlp_ratio": 3.0,
        "axes_dims_rope": (32, 32, 32, 32),
        "rope_theta": 2000,
        "guidance_embeds": False,
    }


def _qwen3(hidden: int, intermediate: int, tied: bool) -> dict[str, Any]:
    return {
        "vocab_size": 151936,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": 36,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 40960,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": tied,
    }


_VAE: dict[str, Any] = {}  # AutoencoderKLFlux2's defaults are the published VAE
_SCHEDULER = {
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
    "time_shift_type": "exponential",
}

# Tiny: four VAE blocks (8x down-sampling), so sizes follow the real rule (multiples of 16);
# 28 text-encoder layers, because the pipeline reads hidden states 9, 18 and 27.
_TINY_TEXT = 32
_TINY = Flux2Arch(
    transformer={
        **_transformer(1, 1, 2, _TINY_TEXT),
        "in_channels": 32,
        "attention_head_dim": 16,
        "timestep_guidance_channels": 32,
        "axes_dims_rope": (4, 4, 4, 4),
    },
    vae={
        "block_out_channels": (8, 8, 16, 16),
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "latent_channels": 8,
        "sample_size": 64,
    },
    text_encoder={
        **_qwen3(_TINY_TEXT, 37, tied=False),
        "vocab_size": 261,  # qwen_tokenizer's bytes and special tokens
        "num_hidden_layers": 28,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "max_position_embeddings": 512,
    },
    tokens=96,
)

FLUX2_ARCHS: dict[str, Flux2Arch] = {
    "tiny-flux2-klein": _TINY,
    "flux2-klein-4b": Flux2Arch(
        _transformer(5, 20, 24, 2560), _VAE, _qwen3(2560, 9728, tied=True), 512
    ),
    "flux2-klein-9b": Flux2Arch(
        _transformer(8, 24, 32, 4096), _VAE, _qwen3(4096, 12288, tied=False), 512
    ),
}


def build_flux2(arch: str, *, device: str, dtype: torch.dtype) -> Any:
    """A distilled ``Flux2KleinPipeline`` of random weights (seeded), built on ``device`` in
    ``dtype``."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    diffusers: Any = importlib.import_module("diffusers")  # untyped constructors

    spec = FLUX2_ARCHS[arch]
    tokenizer = qwen_tokenizer(spec.tokens)
    with building(device, dtype):
        torch.manual_seed(SEED)
        transformer = diffusers.Flux2Transformer2DModel(**spec.transformer)
        torch.manual_seed(SEED + 1)
        vae = diffusers.AutoencoderKLFlux2(**spec.vae)
        # A fresh BatchNorm holds mean 0 and variance 1, which would hide a decoder that forgot
        # to undo the latent normalisation; trained VAEs hold their data's statistics.
        vae.bn.running_mean.normal_(0.0, 0.5)
        vae.bn.running_var.uniform_(0.5, 2.0)
        torch.manual_seed(SEED + 2)
        config = Qwen3Config(
            **spec.text_encoder, pad_token_id=tokenizer.convert_tokens_to_ids(QWEN_PAD)
        )
        text_encoder = Qwen3ForCausalLM(config)
    return diffusers.Flux2KleinPipeline(
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(**_SCHEDULER),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        is_distilled=True,
    )


def write_flux2(arch: str, out: Path, *, device: str, dtype: torch.dtype) -> Path:
    """Write ``build_flux2(arch)`` to ``out`` with ``save_pretrained``."""
    build_flux2(arch, device=device, dtype=dtype).save_pretrained(out, safe_serialization=True)
    return out
