"""The package and the API fit the ecosystem: the package builds (sdist and
wheel) without a warning, type-checks under ``mypy --strict``, the server's
OpenAPI document passes ``openapi-spec-validator``, and a client generated
from it by ``openapi-python-client`` pushes, reads online features and gets
recommendations from the real server.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import requests
from openapi_spec_validator import validate

PACKAGE = Path(__file__).resolve().parents[1]


def test_the_package_builds_without_warnings(tmp_path: Path) -> None:
    # A copy, so the build leaves nothing in the working tree.
    source = tmp_path / "source"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        env=env,
    )
    log = out.stdout + out.stderr
    assert out.returncode == 0, log
    warnings = [line for line in log.splitlines() if "warning" in line.lower()]
    assert warnings == [], "\n".join(warnings)
    built = sorted(p.name for p in (tmp_path / "dist").iterdir())
    assert built == ["reprise-0.1.0-py3-none-any.whl", "reprise-0.1.0.tar.gz"], built


def test_the_package_is_clean_under_mypy_strict() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "reprise"], cwd=PACKAGE, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_generated_client_uses_the_real_server(start_server: Callable[..., Any], tmp_path: Path) -> None:
    server = start_server("--demo")
    spec = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    validate(spec)
    operation_ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids)), operation_ids

    (tmp_path / "openapi.json").write_text(requests.get(f"{server.url}/openapi.json", timeout=10).text)
    out = subprocess.run(
        ["openapi-python-client", "generate", "--path", "openapi.json", "--output-path", "generated"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    sys.path.insert(0, str(tmp_path / "generated"))
    try:
        api = importlib.import_module("reprise_client")
        models = importlib.import_module("reprise_client.models")
        push = importlib.import_module("reprise_client.api.features.push")
        online = importlib.import_module("reprise_client.api.features.get_online_features")
        recommend = importlib.import_module("reprise_client.api.recommendations.recommend")
        client = api.Client(base_url=server.url)

        now = (datetime.now(timezone.utc) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        row = models.PushRequestRowsItem.from_dict({"user_id": "gen-1", "event_timestamp": now, "plays_7d": 7})
        pushed = push.sync(client=client, body=models.PushRequest(view="user_stats", rows=[row]))
        assert isinstance(pushed, models.PushResponse), pushed
        assert pushed.written == 1

        entity = models.OnlineRequestEntitiesItem.from_dict({"user_id": "gen-1"})
        read = online.sync(client=client, body=models.OnlineRequest(features=["user_stats:plays_7d"], entities=[entity]))
        assert isinstance(read, models.OnlineResponse), read
        assert read.rows[0].values[0] == 7
        assert read.store_version >= pushed.store_version

        context = models.RecommendationRequestContext.from_dict({"device": "web", "country": "SE"})
        recs = recommend.sync(client=client, body=models.RecommendationRequest(user_id="u1", context=context, k=5))
        assert isinstance(recs, models.RecommendationResponse), recs
        assert len(recs.items) == 5 and all(0.0 <= i.score <= 1.0 for i in recs.items)
    finally:
        sys.path.remove(str(tmp_path / "generated"))
        for name in [m for m in sys.modules if m == "reprise_client" or m.startswith("reprise_client.")]:
            del sys.modules[name]
