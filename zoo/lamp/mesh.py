"""Meshes as subsets of a fine lattice, batched as boolean masks.

A 1D mesh is a mask ``(n_graphs, n_grid)`` over the vertices of the ground-truth grid: vertex
``i`` sits at ``i * spacing``, masks are sorted by construction, and the ground truth is exact at
every mesh vertex. Vertex 0 is always on the mesh and the mesh's last vertex never leaves it (the
two end vertices are the boundary of the path graph; the PDE itself is periodic, so fields are
interpolated across the wrap from the last vertex to vertex 0 + ``n_grid``).

An edge is named by its left vertex: edge ``i`` joins vertex ``i`` to the next vertex on the mesh,
``next_vertex(mask)[..., i]``. Splitting edge ``i`` adds the lattice point nearest its midpoint
(the midpoint when the span is even) with linearly interpolated values, so the finest spacing is
one lattice cell. Collapsing edge ``i`` deletes its left vertex; the first vertex never goes, and
a collapse whose left vertex is the right vertex of another collapse is dropped (no chains).

Every operation works on the whole batch at once; "vertices are a subset of a lattice" carries
over to 2D, where only the triangulation is new.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

__all__ = [
    "Graph",
    "collapse",
    "collapse_candidates",
    "dropout_mask",
    "graph",
    "interpolate",
    "make_mask",
    "next_vertex",
    "split",
    "split_candidates",
]

_UNIFORM = re.compile(r"^uniform:(\d+)$")


def make_mask(mesh: str | torch.Tensor, n_graphs: int, n_grid: int) -> torch.Tensor:
    """A batch of meshes from a description.

    Args:
        mesh: ``"full"``, ``"uniform:S"`` (every ``S``-th lattice vertex from vertex 0: ``S=4``
            gives 25 of 100), or a boolean mask ``(n_grid,)`` or ``(n_graphs, n_grid)``.
        n_graphs: Batch size.
        n_grid: Lattice size.

    Returns:
        ``(n_graphs, n_grid)`` boolean mask.
    """
    if isinstance(mesh, torch.Tensor):
        mask = mesh.to(torch.bool)
        if mask.shape[-1] != n_grid or mask.dim() not in (1, 2):
            raise ValueError(
                f"mesh mask must have shape ({n_grid},) or (n_graphs, {n_grid}), got "
                f"{tuple(mask.shape)}"
            )
        mask = mask.expand(n_graphs, n_grid).clone()
        if not mask[:, 0].all() or (mask.sum(-1) < 2).any():
            raise ValueError("mesh mask must contain vertex 0 and at least 2 vertices")
        return mask
    if mesh == "full":
        return torch.ones(n_graphs, n_grid, dtype=torch.bool)
    match = _UNIFORM.match(str(mesh))
    if match is None or not 1 <= int(match.group(1)) <= n_grid // 2:
        raise ValueError(
            f"unknown mesh {mesh!r}: use 'full', 'uniform:S' with 1 <= S <= {n_grid // 2} "
            "(S=2 gives every 2nd vertex, S=4 every 4th), or a boolean mask"
        )
    mask = torch.zeros(n_graphs, n_grid, dtype=torch.bool)
    mask[:, :: int(match.group(1))] = True
    return mask


def dropout_mask(
    n_graphs: int, n_grid: int, max_fraction: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Full meshes with a fraction ``U[0, max_fraction]`` of the interior vertices removed."""
    fraction = torch.rand(n_graphs, 1, generator=generator) * max_fraction
    keep = torch.rand(n_graphs, n_grid, generator=generator) >= fraction
    keep[:, 0] = keep[:, -1] = True
    return keep


def next_vertex(mask: torch.Tensor) -> torch.Tensor:
    """For each lattice index, the index of the next mesh vertex to its right.

    Returns:
        ``(n_graphs, n_grid)`` long; ``n_grid`` where no mesh vertex follows.
    """
    n_grid = mask.shape[-1]
    index = torch.arange(n_grid, device=mask.device).expand_as(mask)
    present = torch.where(mask, index, torch.full_like(index, n_grid))
    # the nearest present index strictly to the right: a reversed running minimum, shifted
    following = present.flip(-1).cummin(-1).values.flip(-1)
    return torch.cat([following[:, 1:], torch.full_like(following[:, :1], n_grid)], -1)


def split_candidates(mask: torch.Tensor) -> torch.Tensor:
    """Edges (by left vertex) that span at least two lattice cells."""
    index = torch.arange(mask.shape[-1], device=mask.device)
    right = next_vertex(mask)
    return mask & (right < mask.shape[-1]) & (right - index >= 2)


def collapse_candidates(
    mask: torch.Tensor, split_edges: torch.Tensor | None = None
) -> torch.Tensor:
    """Edges (by left vertex) whose left vertex may be deleted: not the first vertex, not split."""
    candidates = mask & (next_vertex(mask) < mask.shape[-1])
    candidates[:, 0] = False
    if split_edges is not None:
        candidates &= ~split_edges
    return candidates


def split(
    mask: torch.Tensor, values: torch.Tensor, edges: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Splits the selected edges at their lattice midpoints.

    Args:
        mask: ``(n_graphs, n_grid)`` mesh.
        values: ``(n_graphs, n_grid, n_features)`` values at the mesh vertices.
        edges: ``(n_graphs, n_grid)`` boolean, the edges to split by left vertex; edges that
            cannot split (span of one cell) are ignored.

    Returns:
        The new mask and values (new vertices interpolated linearly from the edge's ends).
    """
    right = next_vertex(mask)
    edges = edges & split_candidates(mask)
    rows, left = edges.nonzero(as_tuple=True)
    end = right[rows, left]
    middle = (left + end) // 2
    weight = ((middle - left) / (end - left)).to(values.dtype)[:, None]
    new = (1 - weight) * values[rows, left] + weight * values[rows, end]

    mask = mask.clone()
    values = values.clone()
    mask[rows, middle] = True
    values[rows, middle] = new
    return mask, values


def collapse(mask: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Deletes the left vertex of each selected edge, except the first vertex and chains.

    Args:
        mask: ``(n_graphs, n_grid)`` mesh the edges were named on.
        edges: ``(n_graphs, n_grid)`` boolean, the edges to collapse by left vertex.

    Returns:
        The new mask.
    """
    edges = edges & collapse_candidates(mask)
    n_grid = mask.shape[-1]
    right = next_vertex(mask)
    target = torch.zeros_like(mask)
    rows, left = edges.nonzero(as_tuple=True)
    target[rows, right[rows, left].clamp(max=n_grid - 1)] = True
    return mask & ~(edges & ~target)


def interpolate(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Periodic linear interpolation from the mesh vertices to every lattice vertex.

    Args:
        values: ``(n_graphs, n_grid, n_features)``; entries off the mesh are ignored.
        mask: ``(n_graphs, n_grid)`` with vertex 0 on every mesh.

    Returns:
        ``(n_graphs, n_grid, n_features)``, equal to ``values`` on the mesh.
    """
    n_grid = mask.shape[-1]
    index = torch.arange(n_grid, device=mask.device).expand_as(mask)
    left = torch.where(mask, index, torch.full_like(index, -1)).cummax(-1).values
    present = torch.where(mask, index, torch.full_like(index, 2 * n_grid))
    right = present.flip(-1).cummin(-1).values.flip(-1)
    right = torch.where(right >= n_grid, torch.full_like(right, n_grid), right)  # wrap to 0
    span = (right - left).clamp(min=1)
    weight = ((index - left) / span).to(values.dtype)[..., None]
    return (1 - weight) * _at(values, left % n_grid) + weight * _at(values, right % n_grid)


def _at(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values[b, index[b, i]]`` for ``values`` ``(n_graphs, n_grid, n_features)``."""
    return values.gather(1, index[..., None].expand(-1, -1, values.shape[-1]))


@dataclass
class Graph:
    """A batch of path graphs over the vertices of a mask batch.

    Attributes:
        rows, columns: ``(n_nodes,)`` graph and lattice index of each node, sorted.
        edge_index: ``(2, n_edges)`` both directions of every mesh edge, PyG's
            ``(source, target)`` convention.
        batch: ``(n_nodes,)`` graph of each node (the same as ``rows``).
        boundary: ``(n_nodes,)`` float, 1 at the two end vertices of each graph.
        n_graphs: Batch size.
    """

    rows: torch.Tensor
    columns: torch.Tensor
    edge_index: torch.Tensor
    boundary: torch.Tensor
    n_graphs: int

    @property
    def batch(self) -> torch.Tensor:
        return self.rows

    def nodes(self, dense: torch.Tensor) -> torch.Tensor:
        """``(n_graphs, n_grid, ...)`` → ``(n_nodes, ...)``."""
        return dense[self.rows, self.columns]

    def dense(self, nodes: torch.Tensor, n_grid: int) -> torch.Tensor:
        """``(n_nodes, ...)`` → ``(n_graphs, n_grid, ...)``, zeros off the mesh."""
        out = nodes.new_zeros(self.n_graphs, n_grid, *nodes.shape[1:])
        out[self.rows, self.columns] = nodes
        return out

    def edge_features(self, spacing: float) -> torch.Tensor:
        """``(n_edges, 2)``: ``[Δx, |Δx|]`` from target to source, lattice spacing ``spacing``."""
        source, target = self.edge_index
        dx = (self.columns[source] - self.columns[target]).to(torch.get_default_dtype()) * spacing
        return torch.stack([dx, dx.abs()], -1)


def graph(mask: torch.Tensor) -> Graph:
    """The path graph of each mesh in the batch, flattened into one PyG-style graph."""
    rows, columns = mask.nonzero(as_tuple=True)  # row-major: sorted by graph, then position
    node = torch.arange(rows.numel(), device=mask.device)
    same = rows[1:] == rows[:-1]
    left, right = node[:-1][same], node[1:][same]
    edge_index = torch.cat([torch.stack([left, right]), torch.stack([right, left])], 1)
    first = torch.ones_like(rows, dtype=torch.bool)
    first[1:] = ~same
    last = torch.ones_like(rows, dtype=torch.bool)
    last[:-1] = ~same
    boundary = (first | last).to(torch.get_default_dtype())
    return Graph(rows, columns, edge_index, boundary, mask.shape[0])
