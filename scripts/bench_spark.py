#!/usr/bin/env python3
"""The embedded snapshot vs `reprise.spark.snapshot` on Spark local[2], on
the data of `bench_aggregations.py` (EVENTS play events over 60 days,
ENTITY_ROWS entity rows, 12 windowed aggregates: count, sum and mean of
seconds over 1h, 1d, 7d, 30d), each timed as a whole:

1. `reprise push --backfill` of the events (aggregations maintained);
2. `reprise snapshot` of the entity rows x 12 features to Parquet;
3. `reprise export` of the history (Parquet, the manifest);
4. Spark: session start, then the snapshot from the export directory
   written to Parquet;

and checks every value of 2 equals 4.

    cargo build --workspace --all-targets
    python3 scripts/bench_spark.py --events 1000000 --entity-rows 100000 --users 10000
"""

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sdk", "python"))

from bench_aggregations import DEFINITIONS, FEATURES, generate  # noqa: E402
from bench_common import run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reprise", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "/var/tmp/reprise-target"), "debug", "reprise"))
    parser.add_argument("--dir", default="/var/tmp/reprise-bench-spark")
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
    push = run("push", common + ["push", "--view", "play", os.path.join(directory, "events.csv"), "--backfill"])
    print(f"reprise push: {push:.1f} s", flush=True)
    embedded_path = os.path.join(directory, "embedded.parquet")
    embedded = run("snapshot", common + ["snapshot", "--features", ",".join(FEATURES), "--entities",
                                         os.path.join(directory, "entities.csv"), "--out", embedded_path])
    print(f"reprise snapshot (embedded, whole process): {embedded:.2f} s", flush=True)
    export_dir = os.path.join(directory, "export")
    export = run("export", common + ["export", "--out", export_dir])
    print(f"reprise export: {export:.2f} s", flush=True)

    from pyspark.sql import SparkSession
    from reprise.spark import snapshot

    start = time.perf_counter()
    spark = (SparkSession.builder.master("local[2]").appName("reprise-bench")
             .config("spark.driver.memory", "6g").config("spark.sql.shuffle.partitions", "8")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false").getOrCreate())
    session = time.perf_counter() - start
    entities = spark.read.parquet(os.path.join(directory, "entities.parquet"))
    spark_path = os.path.join(directory, "spark.parquet")
    start = time.perf_counter()
    snapshot(spark, entities, FEATURES, export_dir).write.mode("overwrite").parquet(spark_path)
    on_spark = time.perf_counter() - start
    spark.stop()
    print(f"Spark local[2]: session {session:.1f} s, snapshot to Parquet {on_spark:.2f} s", flush=True)

    got = pq.read_table(spark_path).sort_by("row")
    expected = pq.read_table(embedded_path).sort_by("row")
    mismatches = 0
    for feature in FEATURES:
        column = f"user_plays__{feature.split(':')[1]}"
        a = np.array(got.column(column).to_pylist(), dtype=float)
        b = np.array(expected.column(column).to_pylist(), dtype=float)
        mismatches += int((~np.isclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True)).sum())
    print(f"values compared: {len(FEATURES) * got.num_rows:,}, mismatches: {mismatches}")
    print(json.dumps({"events": args.events, "entity_rows": args.entity_rows, "push_s": push, "embedded_s": embedded,
                      "export_s": export, "spark_session_s": session, "spark_s": on_spark, "mismatches": mismatches}))
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
