"""Configurations of the components several families share, each defined once: the text
encoders (CLIP ViT-L/14, OpenCLIP ViT-bigG/14, T5 v1.1 XXL's encoder) and the VAE (4 latent
channels for SD 1.x and SDXL, 16 for FLUX.1 and SD3.5), published and tiny. Each family's
writer takes them from here and adds what is its own (a VAE's latent statistics, a
tokenizer's length)."""

from __future__ import annotations

from typing import Any

__all__ = [
    "CLIP_G",
    "CLIP_L",
    "T5_XXL",
    "TINY_CLIP",
    "TINY_T5",
    "TINY_VAE",
    "TINY_VAE16",
    "VAE",
    "VAE16",
]

CLIP_L: dict[str, Any] = {  # CLIP ViT-L/14's text tower: SD 1.x, SDXL's first, FLUX.1, SD3.5
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}
CLIP_G: dict[str, Any] = {  # OpenCLIP ViT-bigG/14's text tower: SDXL's second, SD3.5
    **CLIP_L,
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "hidden_act": "gelu",
    "projection_dim": 1280,
}
T5_XXL: dict[str, Any] = {  # google/t5-v1_1-xxl, the encoder only: FLUX.1, SD3.5
    "vocab_size": 32128,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu",
    "layer_norm_epsilon": 1e-6,
    "tie_word_embeddings": False,
}
# The VAE of SD 1.x and SDXL (4 latent channels); each family adds its sample size and scaling.
VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
}
# FLUX.1's and SD3.5's: the same architecture with 16 latent channels and no quant
# convolutions; each family adds its own scaling_factor and shift_factor.
_16_CHANNELS = {
    "latent_channels": 16,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "force_upcast": True,
}
VAE16: dict[str, Any] = {**VAE, **_16_CHANNELS, "sample_size": 1024}

# Tiny: the VAE keeps four blocks (8x down-sampling), so sizes follow the real rules.
TINY_VAE: dict[str, Any] = {
    **VAE,
    "block_out_channels": (8, 8, 16, 16),
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "sample_size": 64,
}
TINY_VAE16: dict[str, Any] = {**TINY_VAE, **_16_CHANNELS}
TINY_CLIP: dict[str, Any] = {
    **CLIP_L,
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "projection_dim": 32,
}
TINY_T5: dict[str, Any] = {
    **T5_XXL,
    "vocab_size": 192,  # tokenizers.t5_tokenizer's pieces
    "d_model": 32,
    "d_kv": 8,
    "d_ff": 37,
    "num_layers": 2,
    "num_heads": 4,
}
