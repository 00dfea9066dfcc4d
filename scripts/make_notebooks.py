"""Writes the notebooks in notebooks/ (outputs are not stored; the test suite executes them).

python scripts/make_notebooks.py
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CORE = [
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

KERNEL_OPERATOR = [
    new_markdown_cell(
        "# `kernel-operator`: a learned linear operator, its Green's function and its rates\n\n"
        "Jin, Lu, Blanchet, Ying, *Minimax Optimal Kernel Operator Learning via Multilevel\n"
        "Training*, ICLR 2023. The default weights learn the solution operator of\n"
        "`-(κu')' + u = f` on the periodic interval, in closed form, from 4096 noisy pairs."
    ),
    new_code_cell(
        "import math\n\n"
        "import matplotlib.pyplot as plt\n"
        "import torch\n\n"
        "import zoo\n\n"
        "model = zoo.load('kernel-operator')\n"
        "print(model.zoo_origin)\n"
        "print(model.regularisation)"
    ),
    new_markdown_cell(
        "## Apply it to any function\n\n"
        "`apply` takes a Python callable of `x` in `[0, 1)`; the model itself takes grid values\n"
        "on any even grid of at least 128 points. The exact operator is the data's own, so we\n"
        "can compare."
    ),
    new_code_cell(
        "from zoo.kernel_operator import make_task\n"
        "from zoo.kernel_operator.fourier import from_coefficients, to_coefficients\n\n\n"
        "def f(x):\n"
        "    return torch.exp(torch.sin(2 * math.pi * x)) * torch.cos(6 * math.pi * x)\n\n"
        "x, u = model.apply(f, m=128)\n"
        "task = make_task('varcoef', 128)\n"
        "u_true = from_coefficients(to_coefficients(f(x)) @ task.operator.T, 128)\n"
        "print(f'relative L2 error: {(u - u_true).norm() / u_true.norm():.2e}')\n"
        "fig, ax = plt.subplots(figsize=(6, 3))\n"
        "ax.plot(x, f(x) / 10, color='0.6', label='f / 10')\n"
        "ax.plot(x, u_true, 'k--', label='exact u')\n"
        "ax.plot(x, u, label='learned u')\n"
        "ax.set_xlabel('x')\n"
        "ax.legend()\n"
        "plt.show()"
    ),
    new_markdown_cell(
        "## What was learned\n\n"
        "Left: the Green's function, `u(x) = ∫ G(x, y) f(y) dy`; its width varies with the\n"
        "coefficient κ(x). Right: the (output, input) Fourier modes the estimator keeps, a\n"
        "staircase: fewer input modes for higher output frequencies, nothing above the top\n"
        "level (the paper's bias and variance contours)."
    ),
    new_code_cell(
        "fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout='constrained')\n"
        "model.plot_green(ax=axes[0])\n"
        "model.plot_support(ax=axes[1])\n"
        "plt.show()"
    ),
    new_markdown_cell(
        "## Resolution independence\n\n"
        "The operator lives on Fourier coefficients, so a band-limited input gives the same\n"
        "output on a coarse and a fine grid."
    ),
    new_code_cell(
        "_, coarse = model.apply(lambda x: torch.sin(2 * math.pi * 3 * x), m=128)\n"
        "_, fine = model.apply(lambda x: torch.sin(2 * math.pi * 3 * x), m=512)\n"
        "print(f'max difference on shared points: {(fine[::4] - coarse).abs().max():.1e}')"
    ),
    new_markdown_cell(
        "## Why multilevel: the rate\n\n"
        "On the synthetic `powerlaw` operator, the exact risk of the best multilevel cutoff\n"
        "falls as `n^-0.48`, the best single-level one as `n^-0.41` (derived: -0.512 and\n"
        "-0.410). This is the exact-risk formula, no sampling; `python -m\n"
        "zoo.kernel_operator.rates` adds the Monte Carlo study."
    ),
    new_code_cell(
        "from zoo.kernel_operator.plots import plot_rates\n"
        "from zoo.kernel_operator.rates import SAMPLE_SIZES, oracle_exact, theory\n\n"
        "powerlaw = make_task('powerlaw', 384, noise_std=1.0)\n"
        "risks = {\n"
        "    'multilevel': [oracle_exact(powerlaw, n, single=False) for n in SAMPLE_SIZES],\n"
        "    'single-level': [oracle_exact(powerlaw, n, single=True) for n in SAMPLE_SIZES],\n"
        "}\n"
        "expected = theory()\n"
        "plot_rates(SAMPLE_SIZES, risks, {'multilevel': expected.multilevel,\n"
        "                                 'single-level': expected.single})\n"
        "plt.show()"
    ),
]

MARS = [
    new_markdown_cell(
        "# `mars`: few-shot regression with a meta-learned function-space prior\n\n"
        "Lehman Pavasovic, Rothfuss, Krause, *MARS: Meta-Learning as Score Matching in the\n"
        "Function Space*, ICLR 2023. A score network learned from 20 sinusoid tasks of five\n"
        "points each is the prior of function-space SVGD on a new task."
    ),
    new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "import torch\n\n"
        "import zoo\n\n"
        "model = zoo.load('mars')\n"
        "print(model.zoo_origin)"
    ),
    new_markdown_cell(
        "## Five points of a new function\n\n"
        "A fresh sinusoid from the benchmark's generator: `a x + A sin(1.5 (x - x0)) + b`.\n"
        "`fit_task` runs fSVGD with ten MLP particles; `predict` gives the mean and the\n"
        "standard deviation with observation noise (`noise=False` for the epistemic part)."
    ),
    new_code_cell(
        "g = torch.Generator().manual_seed(3)\n\n\n"
        "def truth(x):\n"
        "    return 0.6 * x + 1.1 * torch.sin(1.5 * (x - 0.05)) + 5.0\n\n\n"
        "x = 8 * torch.rand(5, generator=g, dtype=torch.float64) - 4\n"
        "y = truth(x) + 0.1 * torch.randn(5, generator=g, dtype=torch.float64)\n"
        "post = model.fit_task(x, y, seed=0)\n"
        "x_new = torch.linspace(-4, 4, 200, dtype=torch.float64)\n"
        "mean, std = post.predict(x_new)\n"
        "print(f'RMSE against the truth: {(mean - truth(x_new)).pow(2).mean().sqrt():.3f}')"
    ),
    new_code_cell(
        "fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), layout='constrained', sharey=True)\n"
        "model.plot_task(post, x_true=x_new, y_true=truth(x_new), ax=axes[0])\n"
        "axes[0].set_title('MARS (learned prior)')\n"
        "vanilla = model.fit_task(x, y, seed=0, prior='normal')\n"
        "model.plot_task(vanilla, x_true=x_new, y_true=truth(x_new), ax=axes[1])\n"
        "axes[1].set_title('same fSVGD, N(0, I) prior')\n"
        "plt.show()"
    ),
    new_markdown_cell(
        "## No data: the learned prior\n\n"
        "With zero context points fSVGD follows the score network alone, so the particles are\n"
        "samples of the meta-learned prior: sinusoid-like functions around a rising trend."
    ),
    new_code_cell(
        "prior = model.fit_task(torch.zeros(0), torch.zeros(0), seed=0)\n"
        "ax = model.plot_task(prior)\n"
        "ax.set_title('learned prior (no context)')\n"
        "plt.show()"
    ),
    new_markdown_cell(
        "## The meta-test table, small\n\n"
        "`evaluate` runs MARS and its baselines with one metric code. Here on five meta-test\n"
        "tasks and one seed, to stay quick; the model card has the full table (20 tasks, five\n"
        "seeds)."
    ),
    new_code_cell(
        "rows = model.evaluate('meta_test', seeds=1, n_tasks=5)\n"
        "for row in rows:\n"
        "    print(f\"{row['name']:32} {row['value']:.3f}\")"
    ),
]

DENOISING = [
    new_markdown_cell(
        "# `denoising`: an equivariant Transformer pre-trained by denoising\n\n"
        "Zaidi et al., *Pre-training via Denoising for Molecular Property Prediction*, ICLR\n"
        "2023. The encoder learned to predict the Gaussian noise added to equilibrium QM9\n"
        "structures; a copy fine-tuned on HOMO predicts orbital energies in meV."
    ),
    new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "import torch\n\n"
        "import zoo\n\n"
        "encoder = zoo.load('denoising')          # denoising.qm9-pretrain\n"
        "print(encoder.zoo_origin)"
    ),
    new_markdown_cell(
        "## Denoising a structure\n\n"
        "Noise of the training size (0.04 Å) on methanol; one step against the predicted noise\n"
        "moves the atoms back towards the equilibrium geometry."
    ),
    new_code_cell(
        "z, pos, batch = encoder.example_input_array\n"
        "sigma = encoder.hparams.sigma\n"
        "g = torch.Generator().manual_seed(0)\n"
        "errors = []\n"
        "for _ in range(200):\n"
        "    eps = torch.randn(pos.shape, generator=g)\n"
        "    noisy = pos + sigma * eps\n"
        "    with torch.no_grad():\n"
        "        denoised = noisy - sigma * encoder.predict_noise(z, noisy, batch)\n"
        "    before = (noisy - pos).norm(dim=1).mean()\n"
        "    errors.append((before, (denoised - pos).norm(dim=1).mean()))\n"
        "before, after = torch.tensor(errors).mean(0)\n"
        "print(f'mean distance from equilibrium: noisy {before:.4f} Å, denoised {after:.4f} Å')"
    ),
    new_markdown_cell(
        "## HOMO energies of new molecules\n\n"
        "`predict` takes RDKit molecules with a 3D conformer, `ase.Atoms` or `(z, positions)`.\n"
        "Here RDKit embeds and MMFF-relaxes a few molecules (not the DFT geometries QM9 was\n"
        "computed on, so expect extra error)."
    ),
    new_code_cell(
        "from rdkit import Chem\n"
        "from rdkit.Chem import AllChem\n\n"
        "homo = zoo.load('denoising.qm9-homo')\n"
        "names = ['C', 'CO', 'CC(=O)C', 'c1ccccc1', 'N#CC=O']\n"
        "molecules = []\n"
        "for smiles in names:\n"
        "    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))\n"
        "    AllChem.EmbedMolecule(mol, randomSeed=0)\n"
        "    AllChem.MMFFOptimizeMolecule(mol)\n"
        "    molecules.append(mol)\n"
        "result = homo.predict(molecules)\n"
        "for smiles, value in zip(names, result.value):\n"
        "    print(f'{smiles:10} HOMO {value:8.0f} {result.unit}')"
    ),
    new_markdown_cell(
        "## On QM9 test molecules\n\n"
        "The fine-tuned model against the DFT values of 300 molecules from the recipe's test\n"
        "split (the first use converts the `qm9pack` CSVs once, about half a minute)."
    ),
    new_code_cell(
        "from zoo.recipes import datamodule_from_recipe, recipe_of\n\n"
        "data = datamodule_from_recipe(recipe_of(homo))\n"
        "data.setup('test')\n"
        "true, predicted = [], []\n"
        "for batch in data.test_dataloader():\n"
        "    with torch.no_grad():\n"
        "        predicted.append(homo(batch.z, batch.pos, batch.batch))\n"
        "    true.append(batch.y)\n"
        "    if sum(map(len, true)) >= 300:\n"
        "        break\n"
        "true, predicted = torch.cat(true), torch.cat(predicted)\n"
        "mae = (predicted - true).abs().mean()\n"
        "fig, ax = plt.subplots(figsize=(4, 4), layout='constrained')\n"
        "ax.scatter(true, predicted, s=6, alpha=0.6)\n"
        "lims = [true.min().item(), true.max().item()]\n"
        "ax.plot(lims, lims, 'k--', lw=1)\n"
        "ax.set(xlabel='DFT HOMO (meV)', ylabel='predicted (meV)', title=f'MAE {mae:.0f} meV')\n"
        "plt.show()"
    ),
]

LAMP = [
    new_markdown_cell(
        "# `lamp`: a learned simulator that remeshes itself\n\n"
        "Wu, Maruyama, Zhao, Wetzstein, Leskovec, *Learning Controllable Adaptive Simulation for\n"
        "Multi-resolution Physics*, ICLR 2023. A graph network predicts the next 25 frames of a\n"
        "1D forced Burgers flow on whatever mesh it is given; before each step a GNN policy\n"
        "splits and collapses edges, trading error against vertices by `beta`."
    ),
    new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "import torch\n\n"
        "import zoo\n\n"
        "model = zoo.load('lamp')\n"
        "print(model.zoo_origin)"
    ),
    new_markdown_cell(
        "## One new trajectory\n\n"
        "`sample_trajectory` solves a fresh E2 trajectory with our WENO5 solver (seeds disjoint\n"
        "from the training and test sets). From frames 25..49 on 25 uniform vertices, LAMP\n"
        "predicts frames 50..249, remeshing before each 25-frame step."
    ),
    new_code_cell(
        "truth = model.sample_trajectory(seed=1)\n"
        "out = model.rollout(truth[25:50], steps=200, beta=0.1, init_mesh='uniform:4')\n"
        "fixed = model.rollout(truth[25:50], steps=200, init_mesh='uniform:4', remesh=False)\n"
        "print('vertices per step  ', out.n_vertices.tolist())\n"
        "print('splits / collapses ', out.splits.tolist(), out.collapses.tolist())\n"
        "print(f'cumulative MSE: LAMP {out.error(truth[50:]):.2f}, '\n"
        "      f'no remeshing {fixed.error(truth[50:]):.2f}')"
    ),
    new_code_cell("model.plot_rollout(out, truth[50:])\nplt.show()"),
    new_markdown_cell(
        "## One policy, many trade-offs\n\n"
        "`beta` is an input of the policy: larger values buy fewer vertices with more error.\n"
        "`evaluate` runs the paper's metric on held-out trajectories (here the first 32 of the\n"
        "128 test trajectories, to stay quick; the model card has all 128)."
    ),
    new_code_cell(
        "rows = model.evaluate('test', beta=[0.0, 0.1, 0.2, 0.3, 0.5], n=32)\n"
        "for r in rows:\n"
        "    beta = '' if r['beta'] is None else f\"beta={r['beta']:g}\"\n"
        "    print(f\"{r['model']:20} from {r['initial_vertices']:3} {beta:9} \"\n"
        "          f\"{r['average_vertices']:6.1f} vertices  error {r['error']:.2f}\")\n"
        "model.plot_tradeoff(rows)\n"
        "plt.show()"
    ),
]

NLSB = [
    new_markdown_cell(
        "# `nlsb`: stochastic paths between population snapshots\n\n"
        "Koshizuka and Sato, *Neural Lagrangian Schrödinger Bridge: Diffusion Modeling for\n"
        "Population Dynamics*, ICLR 2023. From unpaired samples at a few times, NLSB learns an\n"
        "SDE whose drift comes from a potential through a Lagrangian, regularised towards least\n"
        "action. `nlsb.ou1d` is trained on the paper's 1-D Ornstein-Uhlenbeck benchmark."
    ),
    new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "import torch\n\n"
        "import zoo\n\n"
        "model = zoo.load('nlsb')\n"
        "print(model.zoo_origin)\n"
        "print('snapshot times', model.times)"
    ),
    new_markdown_cell(
        "## Paths from chosen starting points\n\n"
        "`sample_trajectories(x0, t, n_repeat)` returns `(len(t), n, n_repeat, dim)`: here 3\n"
        "starting points, 200 paths each, recorded every 0.1."
    ),
    new_code_cell(
        "t = torch.linspace(0, 4, 41)\n"
        "x0 = torch.tensor([[-0.8], [0.0], [0.8]])\n"
        "paths = model.sample_trajectories(x0, t, n_repeat=200, seed=0)\n"
        "print(paths.shape)\n"
        "fig, ax = plt.subplots(figsize=(7, 3.5))\n"
        "for i, color in enumerate(['tab:blue', 'tab:orange', 'tab:green']):\n"
        "    ax.plot(t, paths[:, i, :40, 0], color=color, lw=0.5, alpha=0.4)\n"
        "    mean = paths[:, i, :, 0].mean(1)\n"
        "    ax.plot(t, mean, color=color, lw=2, label=f'x0 = {x0[i, 0]:g}')\n"
        "ax.set(xlabel='t', ylabel='x')\n"
        "ax.legend()\n"
        "plt.show()"
    ),
    new_markdown_cell(
        "## The same paths against the true conditional law\n\n"
        "`ou1d` is linear, so the true X_t given X_0 is known; `plot_conditional` draws the\n"
        "model's conditional mean ± one sd over the truth's. The neural-SDE baseline (same\n"
        "network and budget, no Lagrangian or HJB regulariser) matches the marginals too, but\n"
        "not the paths: that is the paper's point, and what the CDD measures."
    ),
    new_code_cell(
        "baseline = zoo.load('nlsb.ou1d-nsde')\n"
        "fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), sharey=True)\n"
        "model.plot_conditional(ax=axes[0])\n"
        "baseline.plot_conditional(ax=axes[1])\n"
        "axes[0].set_title('NLSB')\n"
        "axes[1].set_title('neural SDE')\n"
        "plt.show()"
    ),
    new_markdown_cell(
        "## Marginals, paths over the snapshots, the potential\n\n"
        "`marginals` starts from the base sample stored with the weights."
    ),
    new_code_cell("model.plot_marginals()\nplt.show()"),
    new_code_cell("model.plot_trajectories(n=40)\nplt.show()"),
    new_code_cell("model.plot_potential()\nplt.show()"),
    new_markdown_cell(
        "## The paper's metrics\n\n"
        "`evaluate` gives MDD (marginal W1) and CDD (conditional W1 from fixed starting points)\n"
        "with the noise floor of two exact samples; here with 50 starting points to stay quick\n"
        "(the model card uses 200 × 100)."
    ),
    new_code_cell("report = model.evaluate(n_starts=50)\nprint(report)"),
]

FAB = [
    new_markdown_cell(
        "# `fab`: a normalizing flow for an unnormalised density\n\n"
        "Midgley et al., *Flow Annealed Importance Sampling Bootstrap*, ICLR 2023. FAB trains a\n"
        "flow q from log p alone (no samples of p): annealed importance sampling moves flow\n"
        "samples towards p²/q, the flow fits them, and a replay buffer reuses each AIS sample.\n"
        "`fab.gmm40` is a RealNVP trained on the paper's 40-mode Gaussian mixture."
    ),
    new_code_cell(
        "import matplotlib.pyplot as plt\n"
        "import torch\n\n"
        "import zoo\n\n"
        "model = zoo.load('fab')\n"
        "print(model.zoo_origin)\n"
        "torch.manual_seed(0)\n"
        "x, log_q = model.sample_and_log_prob(5)\n"
        "print(x, log_q, sep='\\n')"
    ),
    new_markdown_cell(
        "## Samples over the target\n\n"
        "The flow alone, no reweighting; each mode of the mixture should hold some samples."
    ),
    new_code_cell(
        "model.plot_samples(n=3000)\n"
        "plt.show()\n"
        "print('modes covered:', model.modes_covered(10000), 'of', model.target.n_modes)"
    ),
    new_markdown_cell(
        "## Importance sampling with respect to p\n\n"
        "`importance_sample` gives samples with log weights w.r.t. the target, from the flow\n"
        "alone or after AIS (`ais=True`, the trained transitions with frozen step sizes).\n"
        "`ess` is the normalised effective sample size, `log_Z` an estimate with its standard\n"
        "error (GMM-40 is normalised: the truth is 0), `expectation` a self-normalised estimate."
    ),
    new_code_cell(
        "for ais in (False, True):\n"
        "    mean, stderr = model.log_Z(10000, ais=ais)\n"
        "    print(f'ais={ais}: ESS {model.ess(10000, ais=ais):.3f}, '\n"
        "          f'log Z {mean:+.4f} ± {stderr:.4f}')\n"
        "second_moment = model.expectation(lambda x: (x**2).sum(-1), n=10000)\n"
        "exact = (model.target.sample(100000) ** 2).sum(-1).mean()\n"
        "print(f'E_p[|x|²]: importance sampling {second_moment:.1f}, exact samples {exact:.1f}')"
    ),
    new_markdown_cell(
        "## Many Well, 6-D\n\n"
        "Three independent double wells, 8 modes, exact log Z = 30.880. The flow's samples over\n"
        "the first pair of coordinates, and the log Z estimate."
    ),
    new_code_cell(
        "well = zoo.load('fab.manywell6')\n"
        "well.plot_samples(n=3000)\n"
        "plt.show()\n"
        "mean, stderr = well.log_Z(10000)\n"
        "print(f'log Z {mean:.3f} ± {stderr:.3f} (exact {well.target.log_Z:.3f}); '\n"
        "      f'modes {well.modes_covered(10000)}/{well.target.n_modes}')"
    ),
]

NOTEBOOKS = {
    "core": CORE,
    "kernel_operator": KERNEL_OPERATOR,
    "mars": MARS,
    "denoising": DENOISING,
    "lamp": LAMP,
    "nlsb": NLSB,
    "fab": FAB,
}
METADATA = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
}

for name, cells in NOTEBOOKS.items():
    for number, cell in enumerate(cells):
        cell["id"] = f"{name.replace('_', '-')}-{number}"  # stable ids: reruns change nothing
    path = Path(__file__).resolve().parent.parent / "notebooks" / f"{name}.ipynb"
    nbformat.write(new_notebook(cells=cells, metadata=METADATA), path)
    print(f"wrote {path}")
