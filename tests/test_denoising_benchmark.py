"""``benchmarks/denoising_speed.py`` against torchmd-net's ET: a smoke run of the script.

Needs the ``bench`` extra (torchmd-net, warp-lang); skipped where it is absent.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torchmdnet")
pytest.importorskip("warp")  # torchmd-net's neighbour list

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_speed_benchmark_prints_the_ratio(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    """A tiny configuration on the first 200 QM9 molecules: equal parameter counts, the same
    noise predictions with shared weights, and the ratio of the two speeds."""
    command = [sys.executable, str(REPO / "benchmarks" / "denoising_speed.py")]
    command += ["--width", "32", "--layers", "1", "--steps", "2", "--warmup", "1"]
    command += ["--limit", "200", "--cache-dir", str(tmp_path / "qm9")]
    run = subprocess.run(
        command, cwd=tmp_path, env=subprocess_env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout
    assert re.search(r"parameters: ours ([\d,]+)  theirs \1  \(equal\)", out), out
    assert "same function" in out, out
    ratio = re.search(r"ratio ours/theirs: (\d+\.\d+)", out)
    assert ratio and float(ratio.group(1)) > 0, out
