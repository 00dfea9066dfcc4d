"""Registry data of the ``mars`` entry (plain data: no torch import)."""

from zoo.registry import Entry, Metric, Paper, Weights, register

_RECIPE_CMD = (
    "zoo fit --config recipes/mars/{tag}.yaml && zoo export "
    "runs/mars/{tag}/checkpoints/{tag}.ckpt --out checkpoints/mars.{tag} "
    "--name mars.{tag} --force"
)


def _metrics(tag: str, dataset: str, values: dict[str, float]) -> tuple[Metric, ...]:
    return tuple(
        Metric(
            name=f"MARS {name}", value=value, dataset=dataset, command=_RECIPE_CMD.format(tag=tag)
        )
        for name, value in values.items()
    )


register(
    Entry(
        name="mars",
        paper=Paper(
            title="MARS: Meta-Learning as Score Matching in the Function Space",
            authors=("Krunoslav Lehman Pavasovic", "Jonas Rothfuss", "Andreas Krause"),
            arxiv="2210.13319",
        ),
        module="zoo.mars.model.MARS",
        datamodule="zoo.mars.datamodule.MarsDataModule",
        summary="few-shot regression: a meta-learned function-space score as the fSVGD prior",
        weights=(
            Weights(
                tag="sinusoid",
                description="score transformer meta-trained on 20 sinusoid tasks of 5 points",
                recipe="mars/sinusoid.yaml",
                files={
                    "config.json": "0000000000000000000000000000000000000000000000000000000000000000",
                    "model.safetensors": "0000000000000000000000000000000000000000000000000000000000000000",
                },
                metrics=_metrics(
                    "sinusoid",
                    "sinusoid, 20 meta-test tasks, 5 seeds",
                    {},
                ),
            ),
            Weights(
                tag="oscillator",
                description="score transformer meta-trained on 30 damped driven oscillator "
                "tasks of 8 points",
                recipe="mars/oscillator.yaml",
                files={
                    "config.json": "0000000000000000000000000000000000000000000000000000000000000000",
                    "model.safetensors": "0000000000000000000000000000000000000000000000000000000000000000",
                },
                metrics=_metrics(
                    "oscillator",
                    "oscillator, 20 meta-test tasks, 5 seeds",
                    {},
                ),
            ),
        ),
    )
)
