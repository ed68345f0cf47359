#!/usr/bin/env python3
"""Declared aggregations, measured side by side with DuckDB.

Generates EVENTS play events (user, item, time over 60 days, seconds) and
ENTITY_ROWS entity rows (user, time), then, each as a whole process:

1. `reprise push --backfill` of the events into an events view with no
   aggregation (the raw ingest rate);
2. the same into an events view with 3 aggregations x 4 windows
   (count, sum and mean of seconds over 1h, 1d, 7d, 30d) maintained;
3. `reprise snapshot` of the entity rows x those 12 features to Parquet;
4. DuckDB computing the same 12 windows over the same events in Parquet
   (`RANGE BETWEEN INTERVAL ... PRECEDING AND CURRENT ROW`), in this process;

and checks that every value of 3 equals 4. Run by `scripts/bench-aggregations`.
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

WINDOWS = {"1h": 3600, "1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400}

# One definition file for this script and the criterion benchmark.
DEFINITIONS = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "store", "benches", "aggregations.toml")).read()

FEATURES = (
    [f"user_plays:plays_{w}" for w in WINDOWS]
    + [f"user_plays:seconds_sum_{w}" for w in WINDOWS]
    + [f"user_plays:seconds_mean_{w}" for w in WINDOWS]
)


def generate(directory: str, events: int, entity_rows: int, users: int) -> None:
    rng = np.random.default_rng(7)
    user = rng.integers(0, users, events)
    table = pa.table(
        {
            "user_id": pa.array([f"u{u}" for u in user]),
            "item_id": pa.array([f"i{i}" for i in rng.integers(0, 10_000, events)]),
            "event_timestamp": timestamps(START + rng.integers(0, SPAN, events)),
            "seconds": pa.array(rng.integers(1, 600, events)),
        }
    )
    pq.write_table(table, os.path.join(directory, "events.parquet"))
    pcsv.write_csv(rfc3339(table), os.path.join(directory, "events.csv"))
    query_user = rng.integers(0, users, entity_rows)
    entities = pa.table(
        {
            "user_id": pa.array([f"u{u}" for u in query_user]),
            "event_timestamp": timestamps(START + rng.integers(0, SPAN, entity_rows)),
            "row": pa.array(np.arange(entity_rows)),
        }
    )
    pq.write_table(entities, os.path.join(directory, "entities.parquet"))
    pcsv.write_csv(rfc3339(entities), os.path.join(directory, "entities.csv"))


def duckdb_windows(directory: str):
    import duckdb

    frames = ",\n".join(
        f"w{name} AS (PARTITION BY user_id ORDER BY ts RANGE BETWEEN INTERVAL '{seconds * 1_000_000 - 1} microseconds' PRECEDING AND CURRENT ROW)"
        for name, seconds in WINDOWS.items()
    )
    columns = ",\n".join(
        [f"sum(is_event) OVER w{n} AS plays_{n}" for n in WINDOWS]
        + [f"coalesce(sum(seconds) OVER w{n}, 0) AS seconds_sum_{n}" for n in WINDOWS]
        + [f"avg(seconds) OVER w{n} AS seconds_mean_{n}" for n in WINDOWS]
    )
    query = f"""
        WITH u AS (
            SELECT user_id, event_timestamp AS ts, seconds, 1 AS is_event, NULL::BIGINT AS row
            FROM '{directory}/events.parquet'
            UNION ALL
            SELECT user_id, event_timestamp AS ts, NULL::BIGINT, 0, row
            FROM '{directory}/entities.parquet')
        SELECT row, {columns}
        FROM u
        WINDOW {frames}
        QUALIFY is_event = 0
        ORDER BY row"""
    connection = duckdb.connect()
    connection.execute("SET threads TO 2")
    start = time.perf_counter()
    result = connection.sql(query).to_arrow_table()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reprise", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--entity-rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    directory = os.path.abspath(args.dir)
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(os.path.join(directory, "migrations"))
    with open(os.path.join(directory, "migrations", "0001_bench.toml"), "w") as f:
        f.write(DEFINITIONS)
    print(f"generating {args.events:,} events and {args.entity_rows:,} entity rows over {args.users:,} users", flush=True)
    generate(directory, args.events, args.entity_rows, args.users)
    common = [args.reprise, "--data-dir", os.path.join(directory, "data"), "--migrations", os.path.join(directory, "migrations")]
    events_csv = os.path.join(directory, "events.csv")

    raw = run("push (no aggregation)", common + ["push", "--view", "play_raw", events_csv, "--backfill"])
    print(f"reprise push, events view without aggregations: {raw:.1f} s, {args.events / raw:,.0f} events/s", flush=True)
    aggregated = run("push (aggregations)", common + ["push", "--view", "play", events_csv, "--backfill"])
    print(f"reprise push, 3 aggregations x 4 windows maintained: {aggregated:.1f} s, {args.events / aggregated:,.0f} events/s", flush=True)

    snapshot_path = os.path.join(directory, "snapshot.parquet")
    snapshot = run(
        "snapshot",
        common + ["snapshot", "--features", ",".join(FEATURES), "--entities", os.path.join(directory, "entities.csv"), "--out", snapshot_path],
    )
    print(f"reprise snapshot, {args.entity_rows:,} rows x {len(FEATURES)} aggregate features to Parquet (whole process): {snapshot:.2f} s", flush=True)

    duck, expected = duckdb_windows(directory)
    print(f"DuckDB, the same 12 windows over the events in Parquet: {duck:.2f} s", flush=True)

    got = pq.read_table(snapshot_path).sort_by("row")
    mismatches = 0
    for feature in FEATURES:
        name = feature.split(":")[1]
        a = np.array(got.column(f"user_plays__{name}").to_pylist(), dtype=float)
        b = np.array(expected.column(name).to_pylist(), dtype=float)
        same = np.isclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True)
        mismatches += int((~same).sum())
    print(f"values compared: {len(FEATURES) * got.num_rows:,}, mismatches: {mismatches}")
    print(json.dumps({"events": args.events, "entity_rows": args.entity_rows, "push_raw_s": raw, "push_aggregated_s": aggregated,
                      "snapshot_s": snapshot, "duckdb_s": duck, "ratio": snapshot / duck, "mismatches": mismatches}))
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
