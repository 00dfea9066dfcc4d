"""The function-space score network and its exact (Hyvärinen) score-matching loss.

The network reads a measurement set ``{(x_i, f(x_i))}`` as ``k`` tokens and returns one number
per token, the score ``∂/∂f(x_i) log p(f(x_1), ..., f(x_k))``. It has no positional encoding,
so it is permutation equivariant and takes any ``k``. Attention is written with ``einsum`` and
``softmax``: the loss needs a double backward through it, which the CPU kernels of
``scaled_dot_product_attention`` do not provide.

References:
    Pavasovic, Rothfuss, Krause. "MARS: Meta-Learning as Score Matching in the Function
    Space." ICLR 2023. https://arxiv.org/abs/2210.13319
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["ScoreTransformer", "score_matching_loss"]


def _linear(n_in: int, n_out: int, normalized: bool) -> nn.Module:
    layer = nn.Linear(n_in, n_out)
    return spectral_norm(layer) if normalized else layer


class _Block(nn.Module):
    """Multi-head self-attention with learned logit bias, then a GELU feed-forward layer; both
    residual, no layer norm (spectral normalization bounds the layers instead)."""

    def __init__(
        self, width: int, heads: int, key_size: int, widening: int, normalized: bool
    ) -> None:
        super().__init__()
        self.heads, self.key_size = heads, key_size
        self.query = _linear(width, heads * key_size, normalized)
        self.key = _linear(width, heads * key_size, normalized)
        self.value = _linear(width, heads * key_size, normalized)
        self.out = _linear(heads * key_size, width, normalized)
        self.logit_bias = nn.Parameter(torch.zeros(heads))
        self.ffn = nn.Sequential(
            _linear(width, widening * width, normalized),
            nn.GELU(),
            _linear(widening * width, width, normalized),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        batch, k, _ = h.shape
        q = self.query(h).view(batch, k, self.heads, self.key_size)
        key = self.key(h).view(batch, k, self.heads, self.key_size)
        v = self.value(h).view(batch, k, self.heads, self.key_size)
        logits = torch.einsum("bihc,bjhc->bhij", q, key) / self.key_size**0.5
        weights = torch.softmax(logits + self.logit_bias[:, None, None], dim=-1)
        attended = torch.einsum("bhij,bjhc->bihc", weights, v).reshape(batch, k, -1)
        h = h + self.out(attended)
        return h + self.ffn(h)


class ScoreTransformer(nn.Module):
    """Permutation-equivariant score network over measurement sets.

    Args:
        x_dim: Input dimension of the functions.
        width: Token width.
        blocks: Attention blocks.
        heads: Attention heads.
        key_size: Size of each head.
        widening: Feed-forward widening factor.
        spectral: Spectrally normalize every linear layer but the last.

    Shapes:
        - x: ``(batch, k, x_dim)``
        - f: ``(batch, k)``
        - output: ``(batch, k)``, the score with respect to ``f``
    """

    def __init__(
        self,
        x_dim: int = 1,
        width: int = 64,
        blocks: int = 2,
        heads: int = 8,
        key_size: int = 32,
        widening: int = 2,
        spectral: bool = True,
    ) -> None:
        super().__init__()
        self.embed = _linear(x_dim + 1, width, spectral)
        self.blocks = nn.ModuleList(
            _Block(width, heads, key_size, widening, spectral) for _ in range(blocks)
        )
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        h = self.embed(torch.cat([x, f.unsqueeze(-1)], dim=-1))
        for block in self.blocks:
            h = block(h)
        return self.head(h).squeeze(-1)


def score_matching_loss(score: nn.Module, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Exact score matching, ``E[tr(∂s/∂f) + ½ |s|²]``, the trace by one backward pass per
    measurement point (``k`` passes, differentiable).

    Args:
        score: Maps ``(x, f)`` to the score, ``(batch, k)``.
        x: Measurement inputs, ``(batch, k, x_dim)``.
        f: Function values there, ``(batch, k)``.

    Returns:
        The loss averaged over the batch.
    """
    f = f.detach().requires_grad_(True)
    s = score(x, f)
    trace = torch.zeros_like(s[:, 0])
    for i in range(f.shape[1]):
        (grad,) = torch.autograd.grad(s[:, i].sum(), f, create_graph=True)
        trace = trace + grad[:, i]
    return (trace + 0.5 * (s**2).sum(-1)).mean()
