"""Helpers shared by the side-by-side benchmark scripts (bench_*.py)."""

import subprocess
import sys
import time

import numpy as np
import pyarrow as pa

START = 1_767_225_600  # 2026-01-01T00:00:00Z
SPAN = 60 * 86400


def timestamps(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds * 1_000_000, type=pa.timestamp("us", tz="UTC"))


def rfc3339(table: pa.Table) -> pa.Table:
    """The table with its event_timestamp as RFC 3339 text (for CSV)."""
    seconds = table.column("event_timestamp").cast(pa.int64()).to_numpy() // 1_000_000
    text = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s")
    column = pa.array(np.char.add(text.astype(str), "Z"))
    return table.set_column(table.schema.get_field_index("event_timestamp"), "event_timestamp", column)


def run(label: str, command: list) -> float:
    """Wall seconds of one whole process; exits with its stderr if it fails."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{label} failed:\n{result.stderr}")
    return elapsed
