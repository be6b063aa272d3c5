"""Fusing the residual add into the norm that follows it, in Hugging Face Transformer blocks.

    post-LN (BERT family):   out = LayerNorm(dropout(dense(h)) + input)      in *SelfOutput / *Output
    pre-LN (GPT-2):          h = h + attn(ln_1(h)); h = h + mlp(ln_2(h))     ln_2 takes the add
    pre-LN (Llama family):   the same with input_layernorm / post_attention_layernorm (RMSNorm)

A fused block keeps its class (a subclass with the fused forward is swapped in) and the names of
its parameters, so state_dicts are unchanged; its norm becomes AddLayerNorm / AddRMSNorm. Only
block classes whose forward is known are fused; the forwards below restate the Transformers ones
with the add moved into the norm, and the tests compare each against the unfused model.
"""

from __future__ import annotations

from torch import nn

from ..nn import AddLayerNorm, AddRMSNorm


def _post_norm_forward(self, hidden_states, input_tensor):
    out, _ = self.LayerNorm(self.dropout(self.dense(hidden_states)), input_tensor)
    return out


def _gpt2_forward(self, hidden_states, past_key_values=None, attention_mask=None, encoder_hidden_states=None,
                  encoder_attention_mask=None, use_cache=False, **kwargs):
    if encoder_hidden_states is not None:
        raise ValueError("encoder_hidden_states: a block fused by prunq has no cross-attention")
    attn_output, _ = self.attn(self.ln_1(hidden_states), past_key_values=past_key_values,
                               attention_mask=attention_mask, use_cache=use_cache, **kwargs)
    normed, hidden_states = self.ln_2(attn_output, hidden_states)
    return hidden_states + self.mlp(normed)


def _llama_forward(self, hidden_states, attention_mask=None, position_ids=None, past_key_values=None,
                   use_cache=False, position_embeddings=None, **kwargs):
    attn_output, _ = self.self_attn(hidden_states=self.input_layernorm(hidden_states), attention_mask=attention_mask,
                                    position_ids=position_ids, past_key_values=past_key_values,
                                    use_cache=use_cache, position_embeddings=position_embeddings, **kwargs)
    normed, hidden_states = self.post_attention_layernorm(attn_output, hidden_states)
    return hidden_states + self.mlp(normed)


def _is_layer_norm(module) -> bool:
    return isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1


def _is_rms_norm(module) -> bool:
    try:
        AddRMSNorm.from_norm(module)
    except TypeError:
        return False
    return True


# block class name -> (norm attribute, the check its norm must pass, fused forward, fused norm)
_POST_LN = ("LayerNorm", _is_layer_norm, _post_norm_forward, AddLayerNorm.from_norm)
_BLOCKS = {
    **{f"{family}{part}": _POST_LN
       for family in ("Bert", "Roberta", "XLMRoberta", "Electra", "Camembert")
       for part in ("SelfOutput", "Output")},
    "GPT2Block": ("ln_2", _is_layer_norm, _gpt2_forward, AddLayerNorm.from_norm),
    "LlamaDecoderLayer": ("post_attention_layernorm", _is_rms_norm, _llama_forward, AddRMSNorm.from_norm),
    "MistralDecoderLayer": ("post_attention_layernorm", _is_rms_norm, _llama_forward, AddRMSNorm.from_norm),
}
_fused_classes: dict[type, type] = {}


def _fused_class(cls: type, forward) -> type:
    if cls not in _fused_classes:
        _fused_classes[cls] = type(f"AddNormFused{cls.__name__}", (cls,), {"forward": forward, "__module__": __name__})
    return _fused_classes[cls]


def fusable(module: nn.Module) -> bool:
    spec = _BLOCKS.get(type(module).__name__)
    if spec is None or type(module) in _fused_classes.values():
        return False
    if spec[2] is _gpt2_forward and hasattr(module, "crossattention"):
        return False
    return spec[1](getattr(module, spec[0], None))


def fuse_block(module: nn.Module) -> None:
    """Fuses one block in place; the caller has checked `fusable(module)`."""
    norm_name, _, forward, make_norm = _BLOCKS[type(module).__name__]
    setattr(module, norm_name, make_norm(getattr(module, norm_name)))
    module.__class__ = _fused_class(type(module), forward)


def fuse_norms(model: nn.Module) -> list[str]:
    """Fuses every known block of `model` in place; returns the names of the fused blocks."""
    names = [name for name, module in model.named_modules() if fusable(module)]
    for name in names:
        fuse_block(model.get_submodule(name))
    return names
