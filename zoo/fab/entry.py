"""Registry data of the ``fab`` entry (plain data: no torch import)."""

from zoo.registry import Entry, Metric, Paper, Weights, register

_GMM_COMMAND = (
    "python scripts/fab_gmm_comparison.py && zoo export "
    "runs/fab/gmm40_compare/fab_buffer-seed1/fab_buffer-seed1.ckpt --out checkpoints/fab.gmm40 "
    "--name fab.gmm40 --force"
)
_MANYWELL_COMMAND = (
    "zoo fit --config recipes/fab/manywell6.yaml && zoo export "
    "runs/fab/manywell6/lightning_logs/version_0/checkpoints/last.ckpt "
    "--out checkpoints/fab.manywell6 --name fab.manywell6 --force"
)
# what the recipes set beyond the module's defaults (for ``pretrained=False``)
_CPU_FLOW = {"n_layers": 10, "hidden": [64, 64]}


def _metrics(command: str, dataset: str, values: dict[str, float]) -> tuple[Metric, ...]:
    """The export's ``evaluate()`` rows (``zoo.json``); the paper's tables are quoted in the
    model card, not here (they could not be read offline)."""
    return tuple(
        Metric(name=name, value=value, dataset=dataset, command=command)
        for name, value in values.items()
    )


register(
    Entry(
        name="fab",
        paper=Paper(
            title="Flow Annealed Importance Sampling Bootstrap",
            authors=(
                "Laurence I. Midgley",
                "Vincent Stimper",
                "Gregor N. C. Simm",
                "Bernhard Schölkopf",
                "José Miguel Hernández-Lobato",
            ),
            arxiv="2208.01893",
        ),
        module="zoo.fab.module.FABModule",
        datamodule="zoo.fab.data.FABTargetDataModule",
        summary="normalizing flows trained from an unnormalised density by annealed importance "
        "sampling towards p^2/q, with a prioritised replay buffer",
        weights=(
            Weights(
                tag="gmm40",
                description="RealNVP (10 couplings, 2 x 64) trained by FAB with the replay "
                "buffer on the paper's 40-mode 2-D Gaussian mixture (seed 1 of 3)",
                recipe="fab/gmm40_cpu.yaml",
                files={
                    "config.json": "35dad5e9695a2878dd8da70446d2b71800d7969348805fe7c4440859abe98dc5",
                    "model.safetensors": "7936c9bd73672494d0bf2e9381db8f6e526c2b2f8162104d0a368241fff3e83c",
                },
                init_args={"flow": _CPU_FLOW},
                metrics=_metrics(
                    _GMM_COMMAND,
                    "gmm40, 10000 flow samples; 2000 exact test samples",
                    {
                        "flow ESS": 0.35128111676208107,
                        "AIS ESS": 0.3768176449413682,
                        "log Z error (flow)": 0.0019083463284606417,
                        "modes covered": 40.0,
                        "mean log q on exact samples": -7.6337639466191,
                    },
                ),
            ),
            Weights(
                tag="manywell6",
                description="RealNVP (10 couplings, 2 x 64) trained by FAB with the replay "
                "buffer and HMC transitions on the 6-D Many Well (8 modes)",
                recipe="fab/manywell6.yaml",
                files={
                    "config.json": "e970655de1ceb374003aa440b3ddebc0af07bd4baf49a47afc71034ad6eb01b5",
                    "model.safetensors": "1092af92d307eece5bdefe6eaa472fc2d28c3e823846480f87b0bfc93cf23ede",
                },
                init_args={
                    "target": "manywell6",
                    "flow": _CPU_FLOW,
                    "n_intermediate": 4,
                    "transition": "hmc",
                    "batch_size": 128,
                    "buffer_max": 32000,
                    "buffer_min": 4096,
                    "n_updates": 8,
                    "lr": 0.0003,
                },
                metrics=_metrics(
                    _MANYWELL_COMMAND,
                    "manywell6, 10000 flow samples; 2000 exact test samples",
                    {
                        "flow ESS": 0.4539946691797486,
                        "AIS ESS": 0.5881457332578532,
                        "log Z error (flow)": 0.0008663083796385251,
                        "log Z error (AIS)": 0.00401805859702975,
                        "modes covered": 8.0,
                    },
                ),
            ),
        ),
    )
)
