"""Distances between sample sets: exact W1 (earth mover's distance, POT) and the paper's
marginal (MDD) and conditional (CDD) distribution discrepancies."""

from __future__ import annotations

import torch

__all__ = ["wasserstein1"]


def wasserstein1(x: torch.Tensor, y: torch.Tensor) -> float:
    """Exact W1 between two empirical measures with uniform weights, Euclidean ground cost.

    In one dimension POT's sorted-sample formula is exact; otherwise the network-simplex EMD
    solves the transport problem (about 0.25 s for 512 against 512 points).

    Shapes:
        - x: ``(n, dim)``; y: ``(m, dim)``
    """
    import ot

    x = x.detach().double().cpu()
    y = y.detach().double().cpu()
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"wasserstein1 needs samples of one dimension, got {x.shape}, {y.shape}")
    if x.shape[-1] == 1:
        return float(ot.wasserstein_1d(x[:, 0].numpy(), y[:, 0].numpy(), p=1))
    cost = torch.cdist(x, y)
    a = torch.full((len(x),), 1.0 / len(x), dtype=torch.float64)
    b = torch.full((len(y),), 1.0 / len(y), dtype=torch.float64)
    return float(ot.emd2(a, b, cost, numItermax=1_000_000))
