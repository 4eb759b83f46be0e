"""``engine.fuse_qkv`` for SD3's MMDiT: fused projections that give the unfused images.

diffusers' ``SD3Transformer2DModel.fuse_qkv_projections`` installs ``FusedJointAttnProcessor2_0``,
which is not the unfused ``JointAttnProcessor2_0`` over one product: it skips the q/k RMS norms
of SD3.5 (``norm_q``, ``norm_k``, ``norm_added_q``, ``norm_added_k``), so a tiny SD3.5 Large
image moved by 19 to 33 levels, and it requires a text stream, so SD3.5 Medium's dual-attention
layers (``attn2``: the image tokens alone) fail with an AttributeError. ``FusedJointAttention``
is ``JointAttnProcessor2_0`` operation for operation (diffusers 0.42), with each stream's three
projections read from one fused linear layer; what the fused layers compute is the unfused
ones' products side by side, so only summation order can differ.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.functional import scaled_dot_product_attention

__all__ = ["FusedJointAttention", "fuse_joint_attention"]


def fuse_joint_attention(transformer: Any) -> None:
    """Fuse every attention's projections (``to_qkv``; ``to_added_qkv`` for the text stream)
    and run them through ``FusedJointAttention``."""
    from diffusers.models.attention_processor import Attention

    for module in transformer.modules():
        if isinstance(module, Attention):
            attention: Any = module  # untyped in diffusers
            attention.fuse_projections(fuse=True)
    transformer.set_attn_processor(FusedJointAttention())


class FusedJointAttention:
    """Joint attention of SD3's blocks over fused projections (see the module's docstring)."""

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        image_tokens = hidden_states.shape[1]
        query, key, value = _heads(attn, attn.to_qkv(hidden_states), attn.norm_q, attn.norm_k)
        if encoder_hidden_states is not None:  # the text stream, joined after the image's
            text = attn.to_added_qkv(encoder_hidden_states)
            text_q, text_k, text_v = _heads(attn, text, attn.norm_added_q, attn.norm_added_k)
            query = torch.cat([query, text_q], dim=2)
            key = torch.cat([key, text_k], dim=2)
            value = torch.cat([value, text_v], dim=2)

        out = scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
        batch, heads, _, head_dim = out.shape
        out = out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)
        if encoder_hidden_states is not None:
            out, encoder_hidden_states = out[:, :image_tokens], out[:, image_tokens:]
            if not attn.context_pre_only:
                encoder_hidden_states = attn.to_add_out(encoder_hidden_states)
        projected: torch.Tensor = attn.to_out[1](attn.to_out[0](out))  # projection, dropout
        if encoder_hidden_states is not None:
            return projected, encoder_hidden_states
        return projected


def _heads(
    attn: Any, qkv: torch.Tensor, norm_q: Any, norm_k: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One stream's query, key and value as (batch, heads, tokens, head_dim), the query and key
    normalised per head where the model has norms."""
    batch = qkv.shape[0]
    head_dim = qkv.shape[-1] // 3 // attn.heads
    query, key, value = (
        part.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        for part in torch.split(qkv, qkv.shape[-1] // 3, dim=-1)
    )
    if norm_q is not None:
        query = norm_q(query)
    if norm_k is not None:
        key = norm_k(key)
    return query, key, value
