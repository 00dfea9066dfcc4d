"""Every recipe parses; every smoke recipe trains through the CLI in a subprocess.

Recipes live at ``recipes/<entry>/<task>.yaml``; the shrunk versions the tests run are named
``*smoke*.yaml``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from zoo.cli import main
from zoo.testing import run_zoo

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
ALL = sorted(RECIPES.glob("*/*.yaml"))
SMOKE = [path for path in ALL if "smoke" in path.stem]


def recipe_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


@pytest.mark.parametrize("recipe", ALL, ids=recipe_id)
def test_recipe_parses(recipe: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(recipe), "--print_config"])
    assert exit_.value.code in (0, None)
    assert "class_path" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("recipe", SMOKE, ids=recipe_id)
def test_smoke_recipe_trains(recipe: Path, tmp_path: Path, subprocess_env) -> None:
    fit = run_zoo(
        ["fit", "--config", str(recipe), "--trainer.default_root_dir", str(tmp_path)],
        cwd=tmp_path,
        env=subprocess_env,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert list(tmp_path.rglob("*.ckpt")), "the smoke run saved no checkpoint"


def test_every_recipe_takes_the_scale_out_options() -> None:
    import yaml

    for recipe in ALL:
        if "smoke" in recipe.stem:
            continue
        trainer = yaml.safe_load(recipe.read_text()).get("trainer", {})
        missing = {"devices", "num_nodes", "strategy"} - trainer.keys()
        assert not missing, f"{recipe} should set trainer.{', trainer.'.join(sorted(missing))}"
