"""SiLU(depthwise causal convolution): the last step of the memory's projections, with its own backward.

`k, v, q = SiLU(DWConv(x W))` (paper §3.1). On the CPU a grouped `conv1d` is slow at these shapes, and
autograd through K shifted products builds a full-size zero tensor for every tap; here the K shifted
multiply-adds run in place both ways, and the backward makes one buffer for the input gradient.
"""
from __future__ import annotations

import torch
from torch import Tensor


def _conv(feats: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Σ_i feats[:, i: i + T] · weight[i] + bias: (B, K − 1 + T, c), (K, c), (c,) -> (B, T, c)."""
    K = weight.shape[0]
    T = feats.shape[1] - K + 1
    out = torch.addcmul(bias, feats[:, :T], weight[0])
    for i in range(1, K):
        out.addcmul_(feats[:, i: i + T], weight[i])
    return out


class CausalConvSiLU(torch.autograd.Function):
    """SiLU of the depthwise causal convolution; saves its input and the pre-activation."""

    @staticmethod
    def forward(ctx, feats: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        pre = _conv(feats, weight, bias)
        ctx.save_for_backward(feats, weight, pre)
        return torch.nn.functional.silu(pre)

    @staticmethod
    def backward(ctx, dy: Tensor) -> tuple[Tensor | None, ...]:
        feats, weight, pre = ctx.saved_tensors
        K, T = weight.shape[0], pre.shape[1]
        g = torch.ops.aten.silu_backward(dy, pre)
        dfeats = dweight = dbias = None
        if ctx.needs_input_grad[0]:
            dfeats = feats.new_zeros(feats.shape)
            for i in range(K):
                dfeats[:, i: i + T].addcmul_(g, weight[i])
        if ctx.needs_input_grad[1]:
            dweight = torch.stack([torch.linalg.vecdot(g, feats[:, i: i + T], dim=1).sum(0) for i in range(K)])
        if ctx.needs_input_grad[2]:
            dbias = g.sum((0, 1))
        return dfeats, dweight, dbias


def causal_conv_silu(feats: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """SiLU(Σ_i feats[:, i: i + T] · weight[i] + bias) for feats (B, K − 1 + T, c), weight (K, c), bias (c,)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in (feats, weight, bias)):
        return CausalConvSiLU.apply(feats, weight, bias)
    return torch.nn.functional.silu(_conv(feats, weight, bias), inplace=True)  # no graph: one buffer, not two
