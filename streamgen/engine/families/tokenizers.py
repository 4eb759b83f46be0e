"""Small tokenizers built here, so that writing a tiny or full-size random pipeline downloads
nothing: a byte-level CLIP BPE, a character-level T5 Unigram and a byte-level Qwen BPE with
Qwen3's chat template.

Real vocabularies hold tens of thousands of merged tokens; random text encoders gain nothing
from them, and building the files here keeps ``streamgen model write`` deterministic.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

__all__ = ["CLIP_END", "CLIP_START", "clip_tokenizer", "qwen_tokenizer", "t5_tokenizer"]

CLIP_START, CLIP_END = "<|startoftext|>", "<|endoftext|>"


def clip_tokenizer(directory: Path, max_length: int = 77) -> Any:
    """A byte-level CLIP BPE vocabulary with no merges: every byte is a token."""
    from transformers import CLIPTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    vocab: dict[str, int] = {}
    for token in [*symbols, *(s + "</w>" for s in symbols), CLIP_START, CLIP_END]:
        vocab[token] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": CLIP_START,
        "eos_token": CLIP_END,
        "unk_token": CLIP_END,
        "pad_token": CLIP_END,
        "do_lower_case": True,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return CLIPTokenizer.from_pretrained(directory, local_files_only=True)


def t5_tokenizer(max_length: int) -> Any:
    """T5's layout (<pad>=0, </s>=1, <unk>=2, then pieces), with one piece per printable
    character, alone or starting a word: about 200 tokens instead of 32,100."""
    from transformers import T5Tokenizer

    chars = sorted(set(string.printable) - set(string.whitespace))
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(c, -3.0) for c in chars] + [("\u2581" + c, -2.5) for c in chars]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=max_length)


# Qwen3's special tokens: padding / end of text, the chat turns, and the (empty) thinking block
# that ``enable_thinking=False`` writes.
QWEN_PAD = "<|endoftext|>"
_QWEN_SPECIAL = (QWEN_PAD, "<|im_start|>", "<|im_end|>", "<think>", "</think>")
# Qwen3's chat template, reduced to what a prompt encoder uses: plain turns, then the assistant
# turn with an empty thinking block when thinking is off. For one user message it renders the
# same text as the published template.
_QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}"
)


def qwen_tokenizer(max_length: int) -> Any:
    """A byte-level Qwen2 BPE with no merges (every byte a token) and Qwen3's special tokens
    and chat template: the tokenizer FLUX.2 [klein]'s Qwen3 text encoder reads."""
    from transformers import Qwen2Tokenizer

    vocab = {symbol: i for i, symbol in enumerate(_byte_symbols())}
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=[],
        unk_token=QWEN_PAD,
        eos_token="<|im_end|>",
        pad_token=QWEN_PAD,
        model_max_length=max_length,
        chat_template=_QWEN3_CHAT_TEMPLATE,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(_QWEN_SPECIAL[1:])})
    tokenizer.add_tokens([QWEN_PAD], special_tokens=True)
    return tokenizer


def _byte_symbols() -> list[str]:
    """The printable character byte-level BPE uses for each of the 256 byte values."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    symbols: list[str] = []
    shifted = 0
    for byte in range(256):
        if byte in printable:
            symbols.append(chr(byte))
        else:
            # Bytes without a printable form are mapped past 255, in byte order.
            symbols.append(chr(256 + shifted))
            shifted += 1
    return symbols
