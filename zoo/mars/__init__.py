"""Entry ``mars``: meta-learning as score matching in the function space (Pavasovic et al.,
ICLR 2023): a score network over function values at measurement sets, meta-learned by exact
score matching on GP-interpolator posterior samples, is the prior of function-space SVGD on a new
task. Weights ``mars.sinusoid`` (default) and ``mars.oscillator``; card ``model_cards/mars.md``.

The public classes are imported on first use, so that ``import zoo`` stays light.
"""

from zoo._lazy import lazy_exports

__all__ = ["FSVGD", "MARS", "MarsDataModule", "Posterior", "ScoreTransformer"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "FSVGD": "zoo.mars.svgd",
        "MARS": "zoo.mars.model",
        "MarsDataModule": "zoo.mars.datamodule",
        "Posterior": "zoo.mars.model",
        "ScoreTransformer": "zoo.mars.score",
    },
)
