"""Writes notebooks/core.ipynb (outputs are not stored; the test suite executes it)."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell(
        "# The zoo's core: list, info, export, load\n\n"
        "What every entry stands on: a registry you can query without importing torch, an\n"
        "export folder that is also a Hugging Face Hub repo, and `zoo.load`, which finds\n"
        "weights in a folder, in the bundled `checkpoints/`, in the Hugging Face cache or on the\n"
        "Hub. This tour trains a toy regressor for a few seconds to have something to export."
    ),
    new_code_cell(
        "import zoo\n\n"
        "names = zoo.list_models()\n"
        "for name in names:\n"
        "    entry = zoo.info(name)\n"
        "    print(f\"{name:32} {entry['status']:10} {entry['description']}\")\n"
        "print(f'{len(names)} registered weight sets')"
    ),
    new_markdown_cell(
        "## Train something small\n\n"
        "`ToyRegressor` (from `zoo.testing`) fits `y = sin(2x)`; the same `Trainer` runs every\n"
        "entry's recipes through `zoo fit --config recipes/...`."
    ),
    new_code_cell(
        "import lightning.pytorch as pl\n\n"
        "from zoo.testing import ToyDataModule, ToyRegressor\n\n"
        "pl.seed_everything(0)\n"
        "model = ToyRegressor(hidden=32, lr=3e-2)\n"
        "trainer = pl.Trainer(max_epochs=30, accelerator='cpu', logger=False,\n"
        "                     enable_checkpointing=False, enable_progress_bar=False,\n"
        "                     enable_model_summary=False)\n"
        "trainer.fit(model, ToyDataModule())\n"
        "(metric,) = model.evaluate()\n"
        "metric"
    ),
    new_markdown_cell(
        "## Export\n\n"
        "An export folder holds `config.json` (class path and JSON init args),\n"
        "`model.safetensors`, a model card `README.md`, the `recipe.yaml` that trained it and\n"
        "`zoo.json` (provenance, file hashes and a probe)."
    ),
    new_code_cell(
        "import tempfile\n"
        "from pathlib import Path\n\n"
        "from zoo.checkpoint import save_pretrained\n\n"
        "folder = save_pretrained(\n"
        "    model, Path(tempfile.mkdtemp()) / 'toy.demo', name='toy.demo',\n"
        "    metrics=[{'name': 'MSE', 'value': metric['value'], 'dataset': 'sin(2x), [-1, 1]'}],\n"
        ")\n"
        "print(sorted(p.name for p in folder.iterdir()))\n"
        "print((folder / 'README.md').read_text()[:400])"
    ),
    new_markdown_cell(
        "## Load\n\n"
        "Loading checks every file hash, rebuilds the class from `config.json`, loads the\n"
        "weights strictly and says where they came from. `verify_probe` re-runs the recorded\n"
        "probe input."
    ),
    new_code_cell(
        "from zoo.checkpoint import verify_probe\n\n"
        "loaded = zoo.load(folder)\n"
        "print(loaded.zoo_origin)\n"
        "assert verify_probe(loaded)"
    ),
    new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "import torch\n\n"
        "x = torch.linspace(-1, 1, 200).unsqueeze(-1)\n"
        "with torch.no_grad():\n"
        "    y = loaded(x)\n"
        "fig, ax = plt.subplots(figsize=(5, 3))\n"
        "ax.plot(x, torch.sin(2 * x), 'k--', label='sin(2x)')\n"
        "ax.plot(x, y, label=f\"reloaded model (MSE {metric['value']:.1e})\")\n"
        "ax.set_xlabel('x')\n"
        "ax.legend()\n"
        "plt.show()"
    ),
]

notebook = new_notebook(
    cells=cells,
    metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    },
)
path = Path(__file__).resolve().parent.parent / "notebooks" / "core.ipynb"
nbformat.write(notebook, path)
print(f"wrote {path}")
