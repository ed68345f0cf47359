#!/usr/bin/env python3
"""Point-in-time snapshots, measured side by side with DuckDB's ASOF join.

Generates HISTORY rows of a `user_stats` view (user, event time, 10 features:
5 float64, 3 int64, 2 string) and ENTITY_ROWS entity rows (user, time), then:

1. `reprise push --backfill` of the history (reported, not compared);
2. `reprise snapshot --cutoff event` of the entity rows (in Parquet, as
   DuckDB reads them; then in CSV, reported) x the 10 features to Parquet,
   as a whole process. The first snapshot after the backfill is reported
   apart: RocksDB's file writer drops the ingested files from the page
   cache as it writes them, so it reads them from disk, while DuckDB reads
   files the generator just wrote; the ratio uses the next run, the store's
   files in the page cache too;
3. DuckDB's `ASOF LEFT JOIN` of the entity rows with the history, both in
   Parquet, in this process (2 threads), written to Parquet too;

and checks that every value of 2 equals 3. Ties on event time go to the
later write in both (the CSV's row order is the write order; DuckDB gets
the row number as a tie-breaker). Run by `scripts/bench-snapshot`.
"""

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from bench_common import START, SPAN, rfc3339, run, timestamps

FLOATS = [f"f{i}" for i in range(5)]
INTS = [f"n{i}" for i in range(3)]
STRINGS = [f"s{i}" for i in range(2)]
FEATURES = FLOATS + INTS + STRINGS

DEFINITIONS = """
[[entity]]
name = "user"
join_key = "user_id"

[[feature_view]]
name = "user_stats"
version = 1
entities = ["user"]
ttl = "0"
""" + "".join(
    f'\n[[feature_view.feature]]\nname = "{name}"\ntype = "{kind}"\n'
    for name, kind in [(f, "float64") for f in FLOATS] + [(n, "int64") for n in INTS] + [(s, "string") for s in STRINGS]
)


def generate(directory: str, history: int, entity_rows: int, users: int) -> None:
    rng = np.random.default_rng(11)
    columns = {
        "user_id": pa.array([f"u{u}" for u in rng.integers(0, users, history)]),
        "event_timestamp": timestamps(START + rng.integers(0, SPAN, history)),
    }
    for f in FLOATS:
        # Values that print and parse back exactly (the CSV is text).
        columns[f] = pa.array(np.round(rng.normal(0, 100, history), 3))
    for n in INTS:
        columns[n] = pa.array(rng.integers(-1_000_000, 1_000_000, history))
    for s in STRINGS:
        columns[s] = pa.array([f"v{v}" for v in rng.integers(0, 1000, history)])
    table = pa.table(columns)
    pcsv.write_csv(rfc3339(table), os.path.join(directory, "history.csv"))
    table = table.append_column("write_order", pa.array(np.arange(history)))
    pq.write_table(table, os.path.join(directory, "history.parquet"))
    entities = pa.table(
        {
            "user_id": pa.array([f"u{u}" for u in rng.integers(0, users, entity_rows)]),
            "event_timestamp": timestamps(START + rng.integers(0, SPAN, entity_rows)),
            "row": pa.array(np.arange(entity_rows)),
        }
    )
    pq.write_table(entities, os.path.join(directory, "entities.parquet"))
    pcsv.write_csv(rfc3339(entities), os.path.join(directory, "entities.csv"))


def duckdb_asof(directory: str) -> float:
    import duckdb

    selected = ", ".join(f"h.{f}" for f in FEATURES)
    # ASOF matches the greatest (event_timestamp) <= the entity row's; among
    # rows with the same time the later write wins, as in the store.
    query = f"""
        COPY (
            SELECT e.row, e.user_id, e.event_timestamp, {selected}
            FROM '{directory}/entities.parquet' e
            ASOF LEFT JOIN (
                SELECT * FROM '{directory}/history.parquet'
                QUALIFY row_number() OVER (PARTITION BY user_id, event_timestamp ORDER BY write_order DESC) = 1
            ) h
            ON e.user_id = h.user_id AND e.event_timestamp >= h.event_timestamp
        ) TO '{directory}/duckdb.parquet' (FORMAT parquet)"""
    connection = duckdb.connect()
    connection.execute("SET threads TO 2")
    start = time.perf_counter()
    connection.execute(query)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reprise", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--history", type=int, default=2_000_000)
    parser.add_argument("--entity-rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    args = parser.parse_args()
    directory = os.path.abspath(args.dir)
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(os.path.join(directory, "migrations"))
    with open(os.path.join(directory, "migrations", "0001_bench.toml"), "w") as f:
        f.write(DEFINITIONS)
    print(f"generating {args.history:,} history rows and {args.entity_rows:,} entity rows over {args.users:,} users", flush=True)
    generate(directory, args.history, args.entity_rows, args.users)
    common = [args.reprise, "--data-dir", os.path.join(directory, "data"), "--migrations", os.path.join(directory, "migrations")]

    push = run("push", common + ["push", "--view", "user_stats", os.path.join(directory, "history.csv"), "--backfill"])
    print(f"reprise push --backfill: {push:.1f} s, {args.history / push:,.0f} rows/s", flush=True)

    snapshot_path = os.path.join(directory, "snapshot.parquet")
    features = ",".join(f"user_stats:{f}" for f in FEATURES)
    def reprise_snapshot(entities, out):
        return run(
            "snapshot",
            common + ["snapshot", "--cutoff", "event", "--features", features,
                      "--entities", os.path.join(directory, entities), "--out", out],
        )

    # The entity rows in Parquet, as DuckDB reads them (compared below), and
    # in CSV (reported).
    first = reprise_snapshot("entities.parquet", snapshot_path)
    print(f"reprise snapshot, first after the backfill (its files not in the page cache): {first:.2f} s", flush=True)
    snapshot = reprise_snapshot("entities.parquet", snapshot_path)
    print(f"reprise snapshot, {args.entity_rows:,} rows x {len(FEATURES)} features, Parquet to Parquet (whole process): {snapshot:.2f} s", flush=True)
    snapshot_csv = reprise_snapshot("entities.csv", os.path.join(directory, "snapshot_csv.parquet"))
    print(f"reprise snapshot, the entity rows in CSV: {snapshot_csv:.2f} s", flush=True)
    duck = duckdb_asof(directory)
    print(f"DuckDB ASOF LEFT JOIN, same rows to Parquet: {duck:.2f} s", flush=True)

    got = pq.read_table(snapshot_path).sort_by("row")
    expected = pq.read_table(os.path.join(directory, "duckdb.parquet")).sort_by("row")
    mismatches = 0
    for f in FEATURES:
        a = got.column(f"user_stats__{f}").to_pylist()
        b = expected.column(f).to_pylist()
        mismatches += sum(1 for x, y in zip(a, b) if x != y)
    found = got.num_rows - got.column(f"user_stats__{FEATURES[0]}").null_count
    print(f"values compared: {len(FEATURES) * got.num_rows:,} ({found:,} rows with a match), mismatches: {mismatches}")
    print(json.dumps({"history": args.history, "entity_rows": args.entity_rows, "push_s": push,
                      "first_snapshot_s": first, "snapshot_s": snapshot, "snapshot_csv_s": snapshot_csv, "duckdb_s": duck,
                      "ratio": snapshot / duck, "mismatches": mismatches}))
    sys.exit(1 if mismatches or got.num_rows != args.entity_rows else 0)


if __name__ == "__main__":
    main()
