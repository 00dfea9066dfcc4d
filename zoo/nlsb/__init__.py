"""Entry ``nlsb``: Neural Lagrangian Schrödinger Bridge (Koshizuka & Sato, ICLR 2023).

>>> import zoo
>>> model = zoo.load("nlsb")  # doctest: +SKIP
>>> x0 = torch.zeros(5, 1)
>>> paths = model.sample_trajectories(x0, [0, 1, 2, 3, 4], n_repeat=10)  # doctest: +SKIP

The public classes are imported on first use, so that ``import zoo`` stays light.
"""

from zoo._lazy import lazy_exports

__all__ = [
    "Diffusion",
    "LagrangianSDE",
    "NLSBModule",
    "OTFlowPotential",
    "SnapshotDataModule",
    "euler_maruyama",
    "make_lagrangian",
    "make_snapshots",
    "process",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Diffusion": "zoo.nlsb.sde",
        "LagrangianSDE": "zoo.nlsb.sde",
        "NLSBModule": "zoo.nlsb.module",
        "OTFlowPotential": "zoo.nlsb.potential",
        "SnapshotDataModule": "zoo.nlsb.data",
        "euler_maruyama": "zoo.nlsb.sde",
        "make_lagrangian": "zoo.nlsb.lagrangian",
        "make_snapshots": "zoo.nlsb.data",
        "process": "zoo.nlsb.data",
    },
)
