"""Entry ``fab``: Flow Annealed Importance Sampling Bootstrap (Midgley et al., ICLR 2023).

>>> import zoo
>>> model = zoo.load("fab")  # doctest: +SKIP
>>> x, log_w = model.importance_sample(1000, ais=True)  # doctest: +SKIP
>>> model.log_Z(10000)  # doctest: +SKIP

The public classes are imported on first use, so that ``import zoo`` stays light.
"""

from zoo._lazy import lazy_exports

__all__ = [
    "AIS",
    "FLOW_KINDS",
    "GMM40",
    "PRESETS",
    "AISResult",
    "AlanineDipeptide",
    "CircularSplineFlow",
    "FABModule",
    "FABTargetDataModule",
    "ManyWell",
    "PrioritisedReplayBuffer",
    "RealNVP",
    "adjusted_weights",
    "ess",
    "log_Z_estimate",
    "target",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AIS": "zoo.fab.ais",
        "AISResult": "zoo.fab.ais",
        "AlanineDipeptide": "zoo.fab.alanine",
        "CircularSplineFlow": "zoo.fab.spline",
        "FLOW_KINDS": "zoo.fab.module",
        "FABModule": "zoo.fab.module",
        "FABTargetDataModule": "zoo.fab.data",
        "GMM40": "zoo.fab.targets",
        "ManyWell": "zoo.fab.targets",
        "PRESETS": "zoo.fab.flows",
        "PrioritisedReplayBuffer": "zoo.fab.buffer",
        "RealNVP": "zoo.fab.flows",
        "adjusted_weights": "zoo.fab.buffer",
        "ess": "zoo.fab.ais",
        "log_Z_estimate": "zoo.fab.ais",
        "target": "zoo.fab.targets",
    },
)
