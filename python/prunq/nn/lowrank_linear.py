"""LowRankLinear: W [N, K] replaced by the product of two thin factors, up [N, r] @ down [r, K].

    y = up(down(x)),  down: nn.Linear(K, r, bias=False),  up: nn.Linear(r, N, bias)

The factors come from the truncated SVD of W, with sqrt(S) given to each side. They are plain
nn.Linear modules, so a later recipe step (int8) can swap them in turn, and hooks on them
(calibration) see their calls.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.modules import module as _module


def _plain_linear(module: nn.Module) -> bool:
    """Whether calling `module` does nothing but F.linear: an nn.Linear (not a subclass, nor one a
    later pass swapped in, such as Int8Linear) with no hooks on it and no global ones."""
    return (type(module) is nn.Linear and not (module._forward_hooks or module._forward_pre_hooks
                                                 or module._backward_hooks or module._backward_pre_hooks)
            and not (_module._global_forward_hooks or _module._global_forward_pre_hooks
                     or _module._global_backward_hooks or _module._global_backward_pre_hooks))


def rank_for_ratio(ratio: float, out_features: int, in_features: int) -> int:
    """The rank whose two factors hold `ratio` times the parameters of the [N, K] weight."""
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio: expected a fraction in (0, 1], got {ratio}")
    return max(1, int(ratio * out_features * in_features / (out_features + in_features)))


class LowRankLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        if not 1 <= rank <= min(in_features, out_features):
            raise ValueError(f"rank: expected 1..{min(in_features, out_features)}, got {rank}")
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.down = nn.Linear(in_features, rank, bias=False, device=device, dtype=dtype)
        self.up = nn.Linear(rank, out_features, bias=bias, device=device, dtype=dtype)

    @classmethod
    def from_linear(cls, linear: nn.Linear, rank: int, input_gram: torch.Tensor | None = None) -> LowRankLinear:
        """Truncated SVD of linear.weight. With input_gram = E[x x^T] over calibration inputs [K, K],
        the factorisation minimises the error on those inputs rather than on the weight itself:
        the SVD is taken of W @ L with L L^T = input_gram, and L is undone in `down`."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear: expected an nn.Linear, got {type(linear).__name__}")
        w = linear.weight.detach().double()
        module = cls(linear.in_features, linear.out_features, rank, linear.bias is not None,
                     w.device, linear.weight.dtype)
        if input_gram is None:
            u, s, vh = torch.linalg.svd(w, full_matrices=False)
        else:
            gram = input_gram.double()
            gram = gram + 1e-6 * gram.diagonal().mean().clamp_min(1e-12) * torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
            chol = torch.linalg.cholesky(gram)
            u, s, vh = torch.linalg.svd(w @ chol, full_matrices=False)
            vh = torch.linalg.solve_triangular(chol, vh, upper=False, left=False)
        root = s[:rank].sqrt()
        module.down.weight.data.copy_(root[:, None] * vh[:rank])
        module.up.weight.data.copy_(u[:, :rank] * root[None, :])
        if linear.bias is not None:
            module.up.bias.data.copy_(linear.bias.detach())
        return module

    def config(self) -> dict:
        return {"type": "LowRankLinear", "in_features": self.in_features, "out_features": self.out_features,
                "rank": self.rank, "bias": self.up.bias is not None}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        down, up = self._modules["down"], self._modules["up"]
        if _plain_linear(down) and _plain_linear(up):
            # Two module calls cost a fifth of a one-row call on a slow CPU; F.linear does the same.
            return F.linear(F.linear(x, down._parameters["weight"]), up._parameters["weight"], up._parameters["bias"])
        return up(down(x))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"
