"""Entry ``denoising``: pre-training via denoising for molecular property prediction (Zaidi et
al., ICLR 2023, arXiv:2206.00133): an equivariant Transformer learns to predict the Gaussian
noise added to equilibrium structures, then is fine-tuned on a QM9 property with denoising
kept as an auxiliary loss (Noisy Nodes).

>>> from zoo.denoising import QM9DataModule
>>> data = QM9DataModule(target="homo", train_size=8000)  # doctest: +SKIP
>>> data.prepare_data()  # converts the qm9pack CSVs once  # doctest: +SKIP

The public classes are imported on first use, so that ``import zoo`` stays light.
"""

from zoo._lazy import lazy_exports

__all__ = [
    "ET",
    "TARGETS",
    "DenoisingPretrainModule",
    "MoleculeArrays",
    "NoiseHead",
    "Prediction",
    "PropertyFinetuneModule",
    "QM9DataModule",
    "ScalarHead",
    "Target",
    "make_split",
    "parse_row",
    "read_pcqm4mv2",
    "read_qm9",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DenoisingPretrainModule": "zoo.denoising.module",
        "ET": "zoo.denoising.et",
        "MoleculeArrays": "zoo.denoising.molecules",
        "NoiseHead": "zoo.denoising.heads",
        "Prediction": "zoo.denoising.module",
        "PropertyFinetuneModule": "zoo.denoising.module",
        "ScalarHead": "zoo.denoising.heads",
        "QM9DataModule": "zoo.denoising.data",
        "TARGETS": "zoo.denoising.molecules",
        "Target": "zoo.denoising.molecules",
        "make_split": "zoo.denoising.data",
        "parse_row": "zoo.denoising.molecules",
        "read_pcqm4mv2": "zoo.denoising.molecules",
        "read_qm9": "zoo.denoising.molecules",
    },
)
