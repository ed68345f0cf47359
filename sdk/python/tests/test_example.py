"""The example trainer runs end to end against the real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_sklearn.py"


def test_the_example_trainer_pulls_a_snapshot_and_reports_auc(start_server, movielens_dir, tmp_path):
    from conftest import reprise

    data = tmp_path / "data"
    reprise(data, "import", "movielens", str(movielens_dir), catalog="movielens")
    server = start_server("--retrain-every", "0", data=data, catalog="movielens")
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--url", server.url, "--ratings", str(movielens_dir / "ml-100k.inter")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    auc = float(out.stdout.strip().splitlines()[-1].split("AUC")[1].split()[0])
    # Two taste groups: the genre affinity as of each rating separates likes.
    assert auc > 0.8, out.stdout
