"""Small randomly initialised Transformers of the three block families compress knows."""

import pytest
import torch

pytest.importorskip("transformers", reason="the compress tests build models with transformers (prunq[demo])")
pytest.importorskip("safetensors", reason="prunq.save and prunq.load need safetensors")
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaModel  # noqa: E402

ARCHITECTURES = ["bert", "gpt2", "llama"]


def tiny_model(kind: str, hidden: int = 64, seed: int = 0, blocks: int = 2) -> torch.nn.Module:
    torch.manual_seed(seed)
    if kind == "bert":
        config = BertConfig(hidden_size=hidden, num_hidden_layers=blocks, num_attention_heads=4, intermediate_size=2 * hidden,
                            vocab_size=100, max_position_embeddings=64)
        model = BertModel(config)
    elif kind == "gpt2":
        config = GPT2Config(n_embd=hidden, n_layer=blocks, n_head=4, vocab_size=100, n_positions=64,
                            bos_token_id=0, eos_token_id=0)
        model = GPT2LMHeadModel(config)
    else:
        config = LlamaConfig(hidden_size=hidden, num_hidden_layers=blocks, num_attention_heads=4, num_key_value_heads=2,
                             intermediate_size=2 * hidden, vocab_size=100, max_position_embeddings=64)
        model = LlamaModel(config)
    return model.eval()


def run(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        out = model(input_ids=ids)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0).item()
