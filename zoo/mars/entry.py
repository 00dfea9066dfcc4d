"""Registry data of the ``mars`` entry (plain data: no torch import)."""

from zoo.registry import Entry, Metric, Paper, Weights, register, train_command


def _metrics(tag: str, dataset: str, values: dict[str, float]) -> tuple[Metric, ...]:
    return tuple(
        Metric(
            name=f"MARS {name}",
            value=value,
            dataset=dataset,
            command=train_command(f"mars.{tag}", f"mars/{tag}.yaml"),
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
                    "config.json": "ff6a4b6dd8a128be0e966d49e4fc9894b758276f6bb7a307ed3f71472938697e",
                    "model.safetensors": "94cc0e5c924a0af589ffced3369e2d55f2c2c91397c4756990d781526778fb3d",
                },
                metrics=_metrics(
                    "sinusoid",
                    "sinusoid, 20 meta-test tasks, 5 seeds",
                    {
                        "NLL": 0.623871922492981,
                        "RMSE": 0.47383469343185425,
                        "calibration error": 0.0916924998164177,
                    },
                ),
            ),
            Weights(
                tag="oscillator",
                description="score transformer meta-trained on 30 damped driven oscillator "
                "tasks of 8 points",
                recipe="mars/oscillator.yaml",
                files={
                    "config.json": "58897ee13d59c5b493cd46e5ffeea055814c9201a5312a52f2e5948002ce43ac",
                    "model.safetensors": "19c0331f5d48725e38f3841ff9b9c30d9320b0f67000ab9921f85f8ad5b57fef",
                },
                metrics=_metrics(
                    "oscillator",
                    "oscillator, 20 meta-test tasks, 5 seeds",
                    {
                        "NLL": 0.8451423645019531,
                        "RMSE": 0.27296221256256104,
                        "calibration error": 0.09524750709533691,
                    },
                ),
            ),
        ),
    )
)
