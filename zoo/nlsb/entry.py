"""Registry data of the ``nlsb`` entry (plain data: no torch import)."""

from zoo.registry import Entry, Metric, Paper, Weights, register


def _command(tag: str, recipe: str, flags: str = "") -> str:
    """``zoo fit`` with the recipe (and a variant's flags), then ``zoo export`` of its last
    checkpoint, which measures the metrics below."""
    root = f"runs/nlsb/{tag}"
    fit = f"zoo fit --config recipes/nlsb/{recipe}"
    if flags:
        fit += f" {flags} --trainer.default_root_dir {root}"
    return (
        f"{fit} && zoo export {root}/lightning_logs/version_0/checkpoints/last.ckpt "
        f"--out checkpoints/nlsb.{tag} --name nlsb.{tag} --force"
    )


def _metrics(tag: str, recipe: str, flags: str, values: dict[str, float]) -> tuple[Metric, ...]:
    dataset = {
        "ou1d": "ou1d",
        "psde3d": "psde3d",
        "branch2d": "branch2d (t = 2 held out)",
    }[recipe.split(".")[0].split("_")[0]]
    return tuple(
        Metric(
            name=name,
            value=value,
            dataset=f"{dataset}, 1000 test samples per time; CDD 200 starts x 100 paths",
            command=_command(tag, recipe, flags),
        )
        for name, value in values.items()
    )


_NSDE = "--model.alpha_L 0 --model.alpha_R 0"
_ODE = "--model.sigma 0"
# what the recipes set beyond the module's defaults (for ``pretrained=False``)
_OU1D = {
    "g_max": 2.0,
    "alpha_L": [0.3, 0.1, 0.01, 0.0001],
    "alpha_R": [0.2, 0.01, 0.0001, 0.0001],
    "dt": 0.02,
}
_PSDE3D = {
    "dim": 3,
    "dataset": "psde3d",
    "lagrangian": {
        "kind": "newtonian",
        "mass": 1.0,
        "prior": "cubic",
        "prior_args": {"coefficients": [1.0, 0.5, 0.1]},
        "weight": 1.0,
    },
    "alpha_L": 0.001,
    "alpha_R": 0.001,
    "dt": 0.02,
}
_BRANCH2D = {
    "dim": 2,
    "holdout": [2.0],
    "dataset": "branch2d",
    "alpha_L": 0.01,
    "alpha_R": 0.01,
    "dt": 0.02,
}

register(
    Entry(
        name="nlsb",
        paper=Paper(
            title="Neural Lagrangian Schrödinger Bridge: Diffusion Modeling for Population "
            "Dynamics",
            authors=("Takeshi Koshizuka", "Issei Sato"),
            arxiv="2204.04853",
        ),
        module="zoo.nlsb.module.NLSBModule",
        datamodule="zoo.nlsb.data.SnapshotDataModule",
        summary="stochastic sample paths between population snapshots: a potential-drift "
        "neural SDE regularised towards least action",
        weights=(
            Weights(
                tag="ou1d",
                description="NLSB on the paper's 1-D time-inhomogeneous OU process, observed "
                "at t = 1..4 (g_max 2)",
                recipe="nlsb/ou1d.yaml",
                init_args=_OU1D,
                files={
                    "config.json": "329c17f2bda0e97f86911e157947f4d786b3ed4225d0993ff170b672cae12215",
                    "model.safetensors": "f8f280c6f4ccadc5e9f8d0c4bb418abf4e18dab793d9b120e37e82e80acd601e",
                },
                metrics=_metrics(
                    "ou1d",
                    "ou1d.yaml",
                    "",
                    {
                        "MDD one-step mean, observed times": 0.08705057949919139,
                        "CDD mean, mid-points": 0.12996396451902376,
                        "CDD mean, observed times": 0.1900079852423861,
                    },
                ),
            ),
            Weights(
                tag="ou1d-nsde",
                description="the neural-SDE baseline on ou1d: the same network and budget "
                "without the Lagrangian and HJB regularisers",
                recipe="nlsb/ou1d.yaml",
                files={
                    "config.json": "8c4c032901b707318de09309a809afbbb189ccab8f387690b379c5f6954b1220",
                    "model.safetensors": "82569f534356b8dabc365b157e80a73c8c9a10b7199f6e1ffebd7efed34888ac",
                },
                init_args={**_OU1D, "alpha_L": 0.0, "alpha_R": 0.0},
                metrics=_metrics(
                    "ou1d-nsde",
                    "ou1d.yaml",
                    _NSDE,
                    {
                        "MDD one-step mean, observed times": 0.12079340676960423,
                        "CDD mean, mid-points": 0.3614894256053154,
                        "CDD mean, observed times": 0.41415120599882566,
                    },
                ),
            ),
            Weights(
                tag="ou1d-ode",
                description="the ODE baseline on ou1d: no diffusion (g = 0), the same "
                "potential, regularisers and budget",
                recipe="nlsb/ou1d.yaml",
                files={
                    "config.json": "1339d42846a1258663f290a33830d3a2460d76d722ac341429ac0b2cab1215ab",
                    "model.safetensors": "f87cbc20a37a779fb26ff1c7e94454a2b8f056d8aab4b5c41a318890a17b1af7",
                },
                init_args={**_OU1D, "sigma": 0.0},
                metrics=_metrics(
                    "ou1d-ode",
                    "ou1d.yaml",
                    _ODE,
                    {
                        "MDD one-step mean, observed times": 0.18315388662859922,
                        "CDD mean, mid-points": 0.429964464122517,
                        "CDD mean, observed times": 0.7454290585991132,
                    },
                ),
            ),
            Weights(
                tag="psde3d",
                description="NLSB on the paper's 3-D potential SDE, Newtonian Lagrangian with "
                "the cubic prior",
                recipe="nlsb/psde3d.yaml",
                files={
                    "config.json": "5db308d6468f9df6321d40ae7d646776a0379de5fa708fea9cc713449203c489",
                    "model.safetensors": "cf47644c2d4568d9804d8a53b708f2486e564cac28b6c36c85319b45a936e90a",
                },
                init_args=_PSDE3D,
                metrics=_metrics(
                    "psde3d",
                    "psde3d.yaml",
                    "",
                    {
                        "MDD one-step mean, observed times": 0.08655417156620127,
                        "CDD mean, mid-points": 0.27697149101511565,
                        "CDD mean, observed times": 0.11028243642425878,
                    },
                ),
            ),
            Weights(
                tag="branch2d",
                description="NLSB on our 2-D branching process (one blob splits in two), "
                "trained without the t = 2 snapshot",
                recipe="nlsb/branch2d.yaml",
                files={
                    "config.json": "e4030d075b29f24c98ec25e494b1eaed9b65e5e826c9ade2e0dd8237f5b0637b",
                    "model.safetensors": "d28d7ca336c64bb87ebc1fd4ca6fa6c1dccffc431b2ccce53fc16bb0ee704e54",
                },
                init_args=_BRANCH2D,
                metrics=_metrics(
                    "branch2d",
                    "branch2d.yaml",
                    "",
                    {
                        "MDD one-step t = 2 (held out)": 0.13753272768413052,
                        "MDD one-step mean, observed times": 0.11798594818155816,
                        "CDD mean, mid-points": 0.16616284023590414,
                    },
                ),
            ),
        ),
    )
)
