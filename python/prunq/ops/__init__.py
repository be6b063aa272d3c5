"""prunq's ops, also reachable as torch.ops.prunq.*. One module per op family."""

from .layernorm import add_layer_norm, add_rms_norm

__all__ = ["add_layer_norm", "add_rms_norm"]
