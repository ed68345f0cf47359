"""Fixtures: the real `reprise` binary serving a fresh data directory.

The binary is `$REPRISE_BIN`, else `$CARGO_TARGET_DIR/debug/reprise`
(default target directory `/var/tmp/reprise-target`, as `scripts/test`
builds it).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

from reprise import Client

REPO = Path(__file__).resolve().parents[3]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", "/var/tmp/reprise-target"))
BINARY = Path(os.environ.get("REPRISE_BIN", TARGET / "debug" / "reprise"))
SYNTHETIC = TARGET / "debug" / "examples" / "synthetic_movielens"
# The demo music catalogue's migrations, and MovieLens'.
MIGRATIONS = {"music": REPO / "migrations", "movielens": REPO / "catalogs" / "movielens" / "migrations"}


def reprise(data: Path, *args: str, catalog: str = "music") -> subprocess.CompletedProcess:
    """Runs a `reprise` subcommand on `data`, failing the test if it fails."""
    out = subprocess.run(
        [str(BINARY), "--data-dir", str(data), "--migrations", str(MIGRATIONS[catalog]), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "REPRISE_LOG": "warn"},
    )
    assert out.returncode == 0, f"reprise {args}: {out.stderr}"
    return out


class Server:
    def __init__(self, data: Path, extra: List[str], catalog: str = "music") -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [str(BINARY), "--data-dir", str(data), "--migrations", str(MIGRATIONS[catalog]),
             "serve", "--listen", f"127.0.0.1:{port}", "--http-workers", "2", *extra],
            env={**os.environ, "REPRISE_LOG": "warn"},
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            assert self.process.poll() is None, "the server exited early"
            try:
                Client(self.url).ready()
                return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError(f"server at {self.url} not ready in 60 s")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts servers on directories under `tmp_path`; stops them after the test."""
    servers: List[Server] = []

    def start(*extra: str, data: Path = tmp_path / "data", catalog: str = "music") -> Server:
        server = Server(data, list(extra), catalog)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def movielens_dir(tmp_path: Path) -> Path:
    """A small generated data set in MovieLens' format (two taste groups)."""
    out = tmp_path / "ml"
    subprocess.run([str(SYNTHETIC), str(out), "60", "20"], check=True, capture_output=True)
    return out


@pytest.fixture
def trained_data(tmp_path: Path, movielens_dir: Path) -> Path:
    """A data directory with the generated data imported and a ranker trained."""
    data = tmp_path / "data"
    reprise(data, "import", "movielens", str(movielens_dir), catalog="movielens")
    reprise(data, "train", "--factors", "8", "--iterations", "5", catalog="movielens")
    return data
