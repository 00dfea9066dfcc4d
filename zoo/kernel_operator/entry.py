"""Registry data of the ``kernel-operator`` entry (plain data: no torch import)."""

from zoo.registry import Entry, Metric, Paper, Weights, register, train_command

register(
    Entry(
        name="kernel-operator",
        paper=Paper(
            title="Minimax Optimal Kernel Operator Learning via Multilevel Training",
            authors=("Jikai Jin", "Yiping Lu", "Jose Blanchet", "Lexing Ying"),
            arxiv="2209.14430",
        ),
        module="zoo.kernel_operator.model.KernelOperator",
        datamodule="zoo.kernel_operator.data.LinearOperatorDataModule",
        summary="linear operators between periodic functions, closed form, multilevel ridge",
        weights=(
            Weights(
                tag="varcoef1d",
                description="-(κu')' + u = f on the periodic interval, 128 modes, n = 4096, "
                "multilevel ridge tuned on a hold-out",
                recipe="kernel-operator/varcoef1d.yaml",
                files={
                    "config.json": "0ee34e60173d47bb3fcca2bf77e1a8b1f17049ce1ee6ce99fab82e5e445be434",
                    "model.safetensors": "ba730f1a6088c93678e0b315857a31bd0fc95a0913af5bdebf0b45febd4658d8",
                },
                metrics=(
                    Metric(
                        name="test relative L2 error",
                        value=0.0031157120273365216,
                        dataset="varcoef, 1000 noise-free test functions, M = 128",
                        command=train_command(
                            "kernel-operator.varcoef1d", "kernel-operator/varcoef1d.yaml"
                        ),
                    ),
                    Metric(
                        name="exact relative risk",
                        value=9.072781656141816e-06,
                        dataset="varcoef, from the true operator",
                        command=train_command(
                            "kernel-operator.varcoef1d", "kernel-operator/varcoef1d.yaml"
                        ),
                    ),
                ),
                status="partial",
            ),
            Weights(
                tag="powerlaw",
                description="the synthetic power-law operator of the rate study, 384 modes, "
                "n = 8192, multilevel spectral cutoff tuned on a hold-out",
                recipe="kernel-operator/powerlaw.yaml",
                files={
                    "config.json": "804b43408ccc1939f6ad8bfbe0f83573ee3d14148697cb8da3b3eb48395feb4a",
                    "model.safetensors": "590b3438ec74442b9dbc72867c24f9118a5fdb0870dfc07be5ac54fefb396a9b",
                },
                metrics=(
                    Metric(
                        name="test relative L2 error",
                        value=0.17086804629104618,
                        dataset="powerlaw, 1000 noise-free test functions, M = 384",
                        command=train_command(
                            "kernel-operator.powerlaw", "kernel-operator/powerlaw.yaml"
                        ),
                    ),
                    Metric(
                        name="exact relative risk",
                        value=0.026908839297642605,
                        dataset="powerlaw, from the true operator",
                        command=train_command(
                            "kernel-operator.powerlaw", "kernel-operator/powerlaw.yaml"
                        ),
                    ),
                ),
                status="partial",
            ),
        ),
    )
)
