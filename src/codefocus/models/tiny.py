"""Tiny random-weight causal LMs with a real byte-level BPE tokenizer, built offline in code.

They make the white-box methods testable in seconds: same code paths as a real model, no download.
"""

from __future__ import annotations

from typing import Any

_CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "def is_even(n: int) -> bool:\n    return n % 2 == 0\n",
    "Write a function to find the sum of a list of numbers.",
    "Write a python function to check whether the given string is a palindrome or not.",
    "from typing import List\n\ndef has_close_elements(numbers: List[float], threshold: float):",
    '    """ Check if in given list of numbers, are any two numbers closer to each other than\n',
    "    for i in range(len(numbers)):\n        if numbers[i] > threshold:\n            return 1\n",
    "    return False\n    result = []\n    while x < y:\n        x += 1\n",
    "Return the maximum, minimum, count, sorted unique elements of the array or dictionary.",
]


def build_tiny_model(
    architecture: str = "qwen2", seed: int = 0, layers: int = 2, vocab_size: int = 400
):
    """A (model, tokenizer) pair with random weights; deterministic for a given seed."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        PreTrainedTokenizerFast,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    torch.manual_seed(seed)
    size = len(tokenizer)
    eos = tokenizer.eos_token_id
    if architecture == "qwen2":
        config = Qwen2Config(
            vocab_size=size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            bos_token_id=eos,
            eos_token_id=eos,
            pad_token_id=eos,
            tie_word_embeddings=True,
        )
        model: Any = Qwen2ForCausalLM(config)
    elif architecture == "gpt2":
        gpt2_config = GPT2Config(
            vocab_size=size,
            n_embd=32,
            n_layer=layers,
            n_head=4,
            n_positions=512,
            bos_token_id=eos,
            eos_token_id=eos,
            pad_token_id=eos,
        )
        model = GPT2LMHeadModel(gpt2_config)
    else:
        raise ValueError(f"unknown tiny architecture {architecture!r}")
    model.config._attn_implementation = "eager"
    model.eval()
    return model, tokenizer


def build_chaotic_model(architecture: str = "qwen2", seed: int = 1, scale: float = 0.15):
    """``build_tiny_model`` with large random matrices (N(0, scale²), seeded): unlike the default
    tiny models, which repeat one token, its greedy output varies from prompt to prompt, so the
    draft engine's drafts diverge at many positions. A (model, tokenizer) pair."""
    import torch

    net, tokenizer = build_tiny_model(architecture)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in net.parameters():
            if parameter.dim() == 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    return net, tokenizer
