"""Tiny random causal language models for generation tests, made offline in a second: a byte-level BPE tokenizer
with a chat template, and a seeded two-layer GLM or Llama of its vocabulary. Their answers are noise; the
mechanics (tokens, streaming, caches, stops) are the real ones."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GlmConfig, GlmForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def byte_level_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """A byte-level BPE of at most 300 tokens trained on `texts` (few merges: random models emit partial UTF-8
    characters all the time), with `<eos>`, `<|user|>`, `<|assistant|>` and CHAT_TEMPLATE."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<eos>", "<|user|>", "<|assistant|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(texts, trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>")
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def tiny_model(kind: str, vocab_size: int, eos_token_id: int = 0) -> torch.nn.Module:
    """A random two-layer GLM (`kind` "glm") or Llama (any other kind) seeded with 0, in eval mode. An
    `eos_token_id` outside the vocabulary makes a model that never stops."""
    shape = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=0,
        eos_token_id=eos_token_id,
    )
    torch.manual_seed(0)
    if kind == "glm":
        return GlmForCausalLM(GlmConfig(head_dim=16, **shape)).eval()
    return LlamaForCausalLM(LlamaConfig(**shape)).eval()
