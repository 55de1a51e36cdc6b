"""Shared fixtures: the real ml-100k dataset (from the recbole wheel) and small synthetic datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recsim_env.data import load_dataset
from simulators.llm.models import load_tokenizer


@pytest.fixture(scope="session")
def ml100k():
    return load_dataset("ml-100k")


def write_atomic(folder: Path, name: str, files: dict[str, str]) -> Path:
    """Write ``{ext: text}`` as ``folder/name/name.ext`` and return the dataset directory."""
    d = folder / name
    d.mkdir(parents=True, exist_ok=True)
    for ext, text in files.items():
        (d / f"{name}.{ext}").write_text(text)
    return d


@pytest.fixture
def tiny_playtime_dataset(tmp_path):
    """20 users x 30 items with play time and duration (real watch ratios), item genres, user gender."""
    rng = np.random.default_rng(0)
    inter = ["user_id:token\titem_id:token\ttimestamp:float\tplay_time:float\tduration:float"]
    for u in range(20):
        for t, i in enumerate(rng.choice(30, 12, replace=False)):
            inter.append(f"u{u}\ti{i}\t{1000 + 10 * t}\t{rng.uniform(0, 60):.1f}\t60")
    items = ["item_id:token\tclass:token_seq"] + [f"i{i}\t{['Drama', 'Comedy', 'Action'][i % 3]} {'Short' if i % 2 else 'Long'}" for i in range(30)]
    users = ["user_id:token\tgender:token"] + [f"u{u}\t{'MF'[u % 2]}" for u in range(20)]
    return write_atomic(tmp_path, "tiny", {"inter": "\n".join(inter), "item": "\n".join(items), "user": "\n".join(users)})


@pytest.fixture(scope="session")
def tokenizer():
    return load_tokenizer("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory, tokenizer):
    """A 2-layer random Llama with the real tokenizer, saved as a checkpoint directory."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=8192, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)
