"""Registry data of the ``denoising`` entry (plain data: no torch import)."""

from zoo.registry import Entry, Metric, Paper, Weights, register, train_command

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
                    "model.safetensors": "22e6edd3fa690b9ff9ee2db83d282c8655cd3be7b1e8debb5ef5b4f492e3d578",
                },
                metrics=(
                    Metric(
                        name="test denoising MSE",
                        value=0.3037157456808337,
                        dataset="1000 held-out QM9 structures, sigma 0.04 Å",
                        command=train_command(
                            "denoising.qm9-pretrain", "denoising/pretrain_qm9.yaml"
                        ),
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
                    "model.safetensors": "ff4804bd13c70905e24d6a56087cf3b6d8705c3f2c4d8901b2eca7df4ff786a2",
                },
                metrics=(
                    Metric(
                        name="test MAE homo",
                        value=209.15553283691406,
                        unit="meV",
                        dataset="QM9, 2000 test molecules (split seed 0), 2000 training labels",
                        command=train_command("denoising.qm9-homo", "denoising/finetune_qm9.yaml"),
                    ),
                ),
            ),
        ),
    )
)
