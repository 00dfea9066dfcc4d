"""Registry data of the ``denoising`` entry (plain data: no torch import)."""

from zoo.registry import Entry, Metric, Paper, Weights, register

_PRETRAIN_CMD = (
    "zoo fit --config recipes/denoising/pretrain_qm9.yaml && zoo export "
    "runs/denoising/qm9-pretrain/checkpoints/qm9-pretrain.ckpt "
    "--out checkpoints/denoising.qm9-pretrain --name denoising.qm9-pretrain --force"
)
_FINETUNE_CMD = (
    "zoo fit --config recipes/denoising/finetune_qm9.yaml && zoo export "
    "runs/denoising/qm9-homo/checkpoints/qm9-homo.ckpt "
    "--out checkpoints/denoising.qm9-homo --name denoising.qm9-homo --force"
)

register(
    Entry(
        name="denoising",
        paper=Paper(
            title="Pre-training via Denoising for Molecular Property Prediction",
            authors=(
                "Sheheryar Zaidi",
                "Michael Schaarschmidt",
                "James Martens",
                "Hyunjik Kim",
                "Yee Whye Teh",
                "Alvaro Sanchez-Gonzalez",
                "Peter Battaglia",
                "Razvan Pascanu",
                "Jonathan Godwin",
            ),
            arxiv="2206.00133",
        ),
        module="zoo.denoising.module.DenoisingPretrainModule",
        datamodule="zoo.denoising.data.QM9DataModule",
        summary="equivariant Transformer pre-trained by coordinate denoising, QM9 fine-tuning",
        weights=(
            Weights(
                tag="qm9-pretrain",
                description="ET encoder (64 wide, 3 layers) pre-trained by denoising "
                "(sigma 0.04 Å) on QM9 structures outside the labelled pool",
                recipe="denoising/pretrain_qm9.yaml",
                files={
                    "config.json": "ce4782f37e79f278f82e42d39c04906d8d3ab37d86035e5f06b9c18119144eed",
                    "model.safetensors": "f125df1c2473442a3d7281ed150de48b2c652fa2f0e3f58e1bf50baacbdd46b5",
                },
                metrics=(
                    Metric(
                        name="test denoising MSE",
                        value=0.33973892784461135,
                        dataset="1000 held-out QM9 structures, sigma 0.04 Å",
                        command=_PRETRAIN_CMD,
                    ),
                ),
            ),
            Weights(
                tag="qm9-homo",
                description="qm9-pretrain fine-tuned on HOMO (3000 labels) with Noisy Nodes",
                recipe="denoising/finetune_qm9.yaml",
                module="zoo.denoising.module.PropertyFinetuneModule",
                files={
                    "config.json": "492a00405b9dc04270c29c5cb891449050d94a6b0112c9a2f80958e179cec6f0",
                    "model.safetensors": "3ae4554105b99156a23e8370a2127cccec93303158c2478eee8e7b7fe7be2dde",
                },
                metrics=(
                    Metric(
                        name="test MAE homo",
                        value=213.4361572265625,
                        unit="meV",
                        dataset="QM9, 2000 test molecules (split seed 0), 2000 training labels",
                        command=_FINETUNE_CMD,
                    ),
                ),
            ),
        ),
    )
)
