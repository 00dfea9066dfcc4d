"""Entry ``lamp``: learning controllable adaptive simulation for multi-resolution physics (Wu et
al., ICLR 2023): a MeshGraphNets-style evolution model on whatever mesh it is given, and a GNN
actor-critic that splits and collapses edges before each step, with the error-versus-cost
trade-off ``beta`` an input of the policy. Weights ``lamp.burgers1d``; card
``model_cards/lamp.md``.

The public classes are imported on first use, so that ``import zoo`` stays light.
"""

from zoo._lazy import lazy_exports

__all__ = [
    "EvolutionModel",
    "FNOBaseline",
    "LampDataModule",
    "LampEvolutionModule",
    "LampModule",
    "Policy",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "EvolutionModel": "zoo.lamp.gnn",
        "FNOBaseline": "zoo.lamp.baseline",
        "LampDataModule": "zoo.lamp.datamodule",
        "LampEvolutionModule": "zoo.lamp.module",
        "LampModule": "zoo.lamp.module",
        "Policy": "zoo.lamp.policy",
    },
)
