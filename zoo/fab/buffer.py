"""FAB's prioritised replay buffer of AIS samples and its importance-weight adjustment.

Each entry is an AIS sample x with its log weight w.r.t. g_old ∝ p^α q_old^(1-α) and
log q_old(x), the flow's density when it was stored or last used. Draws are without
replacement with probability ∝ w; after an update of the flow, g_new / g_old =
(q_θ / q_old)^(1-α), so the stored weight is moved by log_adj = (1 - α)(log q_θ - log q_old).

The buffer holds plain tensors, not module buffers: a Lightning module puts
:meth:`PrioritisedReplayBuffer.state_dict` into resume checkpoints only, never into
exported weights.

References:
    Midgley et al., "Flow Annealed Importance Sampling Bootstrap", ICLR 2023,
    arXiv:2208.01893, Section 3 ("FAB with a replay buffer").
    Kool, van Hoof, Welling, "Stochastic Beams and Where to Find Them: the Gumbel-Top-k
    Trick", ICML 2019, arXiv:1903.06059.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

__all__ = ["BufferSample", "PrioritisedReplayBuffer", "adjusted_weights"]


class BufferSample(NamedTuple):
    """One minibatch drawn from the buffer.

    Shapes:
        - indices, log_w, log_q_old: ``(batch_size,)``; x: ``(batch_size, dim)``
    """

    indices: torch.Tensor
    x: torch.Tensor
    log_w: torch.Tensor
    log_q_old: torch.Tensor


class PrioritisedReplayBuffer:
    """A FIFO ring of (x, log w, log q_old) drawn without replacement with probability ∝ w.

    Args:
        dim: Dimension of x.
        max_length: Capacity; adding past it overwrites the oldest entries.
        min_length: Length from which :attr:`ready` is true (training starts there).
        dtype: Dtype of the stored tensors.
        device: Device of the stored tensors.
    """

    def __init__(
        self,
        dim: int,
        max_length: int,
        min_length: int,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        if dim < 1:
            raise ValueError(f"PrioritisedReplayBuffer: dim must be at least 1, got {dim}")
        if not 0 <= min_length <= max_length or max_length < 1:
            raise ValueError(
                "PrioritisedReplayBuffer: need 0 <= min_length <= max_length and max_length >= "
                f"1, got min_length={min_length}, max_length={max_length}"
            )
        self.dim, self.max_length, self.min_length = dim, max_length, min_length
        self.x = torch.zeros(max_length, dim, dtype=dtype, device=device)
        self.log_w = torch.full((max_length,), -math.inf, dtype=dtype, device=device)
        self.log_q_old = torch.zeros(max_length, dtype=dtype, device=device)
        self._next = 0  # write position of the ring
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def ready(self) -> bool:
        """Whether the buffer holds at least ``min_length`` entries."""
        return self._size >= self.min_length

    def add(self, x: torch.Tensor, log_w: torch.Tensor, log_q_old: torch.Tensor) -> None:
        """Appends samples, overwriting the oldest ones once full.

        Args:
            x: Samples, ``(n, dim)``.
            log_w: Their log importance weights, ``(n,)``.
            log_q_old: The flow's log density at ``x``, ``(n,)``.
        """
        if x.dim() != 2 or x.shape[1] != self.dim or log_w.shape != x.shape[:1]:
            raise ValueError(
                f"PrioritisedReplayBuffer.add: expected x (n, {self.dim}) and log_w, log_q_old "
                f"(n,), got {tuple(x.shape)}, {tuple(log_w.shape)}, {tuple(log_q_old.shape)}"
            )
        if log_q_old.shape != log_w.shape:
            raise ValueError(
                f"PrioritisedReplayBuffer.add: log_q_old must have shape {tuple(log_w.shape)}, "
                f"got {tuple(log_q_old.shape)}"
            )
        x, log_w, log_q_old = (
            x[-self.max_length :],
            log_w[-self.max_length :],
            log_q_old[-self.max_length :],
        )
        n = len(x)
        slots = (self._next + torch.arange(n, device=self.x.device)) % self.max_length
        self.x[slots] = x.detach().to(self.x)
        self.log_w[slots] = log_w.detach().to(self.log_w)
        self.log_q_old[slots] = log_q_old.detach().to(self.log_q_old)
        self._next = (self._next + n) % self.max_length
        self._size = min(self._size + n, self.max_length)

    def sample(
        self, n_batches: int, batch_size: int, generator: torch.Generator | None = None
    ) -> list[BufferSample]:
        """Draws ``n_batches · batch_size`` distinct entries with probability ∝ w, shuffled.

        Gumbel top-k: the k largest log w + Gumbel noise are a draw of k items without
        replacement, each next one with probability ∝ w among those left.

        Args:
            n_batches: Number of minibatches.
            batch_size: Entries per minibatch.
            generator: Source of randomness.

        Returns:
            ``n_batches`` minibatches; their ``indices`` go back to :meth:`adjust`.
        """
        k = n_batches * batch_size
        log_w = self.log_w[: self._size]
        n_valid = int(torch.isfinite(log_w).sum())
        if k < 1 or k > n_valid:
            raise ValueError(
                f"PrioritisedReplayBuffer.sample: cannot draw {n_batches} x {batch_size} = {k} "
                f"distinct entries from {n_valid} with finite weight ({self._size} stored); "
                "draw fewer or fill the buffer to min_length first"
            )
        u = torch.rand(log_w.shape, generator=generator, dtype=log_w.dtype, device=log_w.device)
        gumbel = -torch.log(-torch.log(u.clamp_min(torch.finfo(u.dtype).tiny)))
        chosen = torch.topk(log_w + gumbel, k).indices
        order = torch.randperm(k, generator=generator, device=chosen.device)
        chosen = chosen[order]
        return [
            BufferSample(i, self.x[i], self.log_w[i], self.log_q_old[i])
            for i in chosen.split(batch_size)
        ]

    def adjust(
        self, indices: torch.Tensor, log_w_adjustment: torch.Tensor, log_q_new: torch.Tensor
    ) -> None:
        """Writes back after an update: log w += adjustment, log q_old = log q_new.

        Entries with a non-finite adjustment get log w = -inf and are never drawn again.
        ``indices`` must come from the latest :meth:`sample`, with no :meth:`add` in between.

        Args:
            indices: Entries, ``(batch_size,)``, distinct.
            log_w_adjustment: log_adj from :func:`adjusted_weights`, ``(batch_size,)``.
            log_q_new: The updated flow's log density at those entries, ``(batch_size,)``.
        """
        adj = log_w_adjustment.detach().to(self.log_w)
        new = torch.where(torch.isfinite(adj), self.log_w[indices] + adj, -math.inf)
        self.log_w[indices] = new
        self.log_q_old[indices] = log_q_new.detach().to(self.log_q_old)

    def state_dict(self) -> dict[str, torch.Tensor | int]:
        """Plain tensors (the filled part only) and ints, for a resume checkpoint."""
        return {
            "x": self.x[: self._size].clone(),
            "log_w": self.log_w[: self._size].clone(),
            "log_q_old": self.log_q_old[: self._size].clone(),
            "next": self._next,
            "size": self._size,
            "max_length": self.max_length,
        }

    def load_state_dict(self, state: dict[str, torch.Tensor | int]) -> None:
        """Restores :meth:`state_dict`'s output into a buffer of the same dim and capacity."""
        x = state["x"]
        assert isinstance(x, torch.Tensor), "buffer state holds no tensor 'x'"
        if state["max_length"] != self.max_length or x.shape[1:] != (self.dim,):
            raise ValueError(
                "PrioritisedReplayBuffer.load_state_dict: the state has max_length "
                f"{state['max_length']} and x of shape {tuple(x.shape)}, this buffer "
                f"max_length {self.max_length} and dim {self.dim}; build it with those"
            )
        size = int(state["size"])
        self.x[:size] = x.to(self.x)
        self.log_w[:size] = torch.as_tensor(state["log_w"]).to(self.log_w)
        self.log_q_old[:size] = torch.as_tensor(state["log_q_old"]).to(self.log_q_old)
        self.log_w[size:] = -math.inf
        self._next, self._size = int(state["next"]), size


def adjusted_weights(
    log_q_new: torch.Tensor,
    log_q_old: torch.Tensor,
    alpha: float = 2.0,
    clip: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The importance correction of stored samples after the flow moved from q_old to q_θ.

    Args:
        log_q_new: log q_θ(x), ``(batch,)``.
        log_q_old: log q_old(x) from the buffer, ``(batch,)``.
        alpha: α of g = p^α q^(1-α).
        clip: Upper bound c of the weights (``None``: no clipping).

    Returns:
        min(exp(log_adj), c) and log_adj = (1 - α)(log q_θ - log q_old), both ``(batch,)``.

    >>> w, log_adj = adjusted_weights(torch.tensor([0.0]), torch.tensor([1.0]))
    >>> round(float(log_adj), 6), round(float(w), 6)
    (1.0, 2.718282)
    """
    log_adj = (1.0 - alpha) * (log_q_new - log_q_old)
    weights = log_adj.exp()
    if clip is not None:
        weights = weights.clamp(max=clip)
    return weights, log_adj
