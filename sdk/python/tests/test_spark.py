"""`reprise.spark.snapshot` on Spark local[2] equals the embedded store's
snapshot cell by cell: random histories (ties within a push and across
pushes, backfills and live writes), a TTL, both cutoffs, a pinned version,
every transform and every aggregation op (filters, buckets, windows), read
from a `reprise export` directory made incrementally.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List

from conftest import BINARY

# scripts/test installs pyspark and xxhash, and a Java runtime: no skipping.
from reprise.spark import snapshot

DEFINITIONS = """
[[entity]]
name = "user"
join_key = "user_id"

[[entity]]
name = "item"
join_key = "item_id"

[[feature_view]]
name = "profile"
version = 1
entities = ["user"]
ttl = "600s"

[[feature_view.feature]]
name = "age"
type = "int64"

[[feature_view.feature]]
name = "score"
type = "float64"

[[feature_view.feature]]
name = "country"
type = "string"

[[feature_view.feature]]
name = "signup"
type = "int64"

[[feature_view.feature]]
name = "age_scaled"
type = "float64"
transform = { kind = "scale", input = "age", factor = 0.5, offset = 1.0 }

[[feature_view.feature]]
name = "score_log"
type = "float64"
transform = { kind = "log1p", input = "score" }

[[feature_view.feature]]
name = "score_clipped"
type = "float64"
transform = { kind = "clip", input = "score", min = 0.0, max = 5.0 }

[[feature_view.feature]]
name = "age_band"
type = "int64"
transform = { kind = "bucketize", input = "age", boundaries = [18.0, 30.0, 50.0] }

[[feature_view.feature]]
name = "hour"
type = "int64"
transform = { kind = "hour_of_day", input = "event_timestamp" }

[[feature_view.feature]]
name = "signup_day"
type = "int64"
transform = { kind = "day_of_week", input = "signup" }

[[feature_view.feature]]
name = "country_bucket"
type = "int64"
transform = { kind = "hash_bucket", input = "country", buckets = 7 }

[[feature_view.feature]]
name = "country_one_hot"
type = "float_vector"
transform = { kind = "one_hot", input = "country", vocabulary = ["SE", "DE", "FR"] }

[[feature_view.feature]]
name = "country_filled"
type = "string"
transform = { kind = "default", input = "country", value = "??" }

[[feature_view]]
name = "play"
version = 1
kind = "events"
entities = ["user", "item"]
ttl = "0"

[[feature_view.feature]]
name = "seconds"
type = "int64"

[[feature_view.feature]]
name = "device"
type = "string"

[[feature_view.feature]]
name = "tags"
type = "string_list"

[[aggregation]]
name = "user_plays"
version = 1
source = "play"
entities = ["user"]

[[aggregation.feature]]
name = "plays"
op = "count"
windows = ["120s", "0"]

[[aggregation.feature]]
name = "long_plays"
op = "count"
windows = ["600s"]
filter = { feature = "seconds", op = ">=", value = 30 }

[[aggregation.feature]]
name = "seconds"
op = "sum"
input = "seconds"
windows = ["600s"]

[[aggregation.feature]]
name = "seconds"
op = "mean"
input = "seconds"
windows = ["0"]

[[aggregation.feature]]
name = "seconds"
op = "min"
input = "seconds"
windows = ["600s"]

[[aggregation.feature]]
name = "seconds"
op = "max"
input = "seconds"
windows = ["600s"]

[[aggregation.feature]]
name = "device"
op = "last"
input = "device"
windows = ["0"]

[[aggregation.feature]]
name = "device"
op = "distinct_count"
input = "device"
windows = ["600s"]

[[aggregation.feature]]
name = "tag_plays"
op = "count"
bucket_by = "tags"
vocabulary = ["a", "b", "c"]
windows = ["600s"]

[[aggregation.derived]]
name = "plays_all_log"
type = "float64"
transform = { kind = "log1p", input = "plays_all" }
"""

FEATURES = [
    "profile:age", "profile:score", "profile:country", "profile:age_scaled", "profile:score_log",
    "profile:score_clipped", "profile:age_band", "profile:hour", "profile:signup_day",
    "profile:country_bucket", "profile:country_one_hot", "profile@1:country_filled",
    "user_plays:plays_120s", "user_plays:plays_all", "user_plays:long_plays_600s",
    "user_plays:seconds_sum_600s", "user_plays:seconds_mean_all", "user_plays:seconds_min_600s",
    "user_plays:seconds_max_600s", "user_plays:device_last_all",
    "user_plays:device_distinct_count_600s", "user_plays:tag_plays_600s", "user_plays:plays_all_log",
]


def iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1e6) % 1_000_000:06d}Z"


def run(*args: str) -> str:
    out = subprocess.run([str(BINARY), *args], capture_output=True, text=True,
                         env={"REPRISE_LOG": "warn", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, f"{args}: {out.stderr}"
    return out.stdout


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def test_spark_snapshots_equal_the_stores(tmp_path: Path) -> None:
    from pyspark.sql import SparkSession

    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_spark.toml").write_text(DEFINITIONS)
    data = tmp_path / "data"
    store = ["--data-dir", str(data), "--migrations", str(migrations)]
    rng = random.Random(11)
    now = time.time()
    base = now - 900
    users = [f"u{i}" for i in range(6)]

    def push(view: str, rows: List[Dict[str, Any]], backfill: bool) -> None:
        path = tmp_path / f"push-{rng.random()}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        run(*store, "push", "--view", view, str(path), *(["--backfill"] if backfill else []))

    def write_some(pushes: int) -> None:
        for _ in range(pushes):
            backfill = rng.random() < 0.5
            at = base + rng.randrange(0, 840)
            user = rng.choice(users)
            profile = {"user_id": user, "event_timestamp": iso(at), "age": rng.randrange(10, 70),
                       "score": rng.choice([rng.uniform(-2, 8), None]), "country": rng.choice(["SE", "DE", "XX", None]),
                       "signup": int(at) - rng.randrange(0, 10**6)}
            # A tie on event time within the push: the later row wins.
            tie = dict(profile, age=rng.randrange(10, 70))
            push("profile", [profile, tie] if rng.random() < 0.3 else [profile], backfill)
            plays = [{"user_id": user, "item_id": f"i{rng.randrange(4)}",
                      "event_timestamp": iso(at - rng.randrange(0, 300)),
                      "seconds": rng.choice([rng.randrange(0, 90), None]),
                      "device": rng.choice(["tv", "web", "mobile"]),
                      "tags": rng.sample(["a", "b", "c", "d"], rng.randrange(0, 3))} for _ in range(rng.randrange(1, 4))]
            push("play", plays, backfill)

    write_some(15)
    # The version to pin: the store's now (an export into a scratch directory says it).
    pinned = json.loads(run(*store, "export", "--out", str(tmp_path / "scratch")))["store_version"]
    export_dir = tmp_path / "export"
    run(*store, "export", "--out", str(export_dir))
    write_some(15)
    run(*store, "export", "--out", str(export_dir))  # incremental

    entities = [{"user_id": rng.choice(users + ["nobody"]), "event_timestamp": iso(base + rng.randrange(0, 960)),
                 "label": i % 2} for i in range(80)]
    entities_path = tmp_path / "entities.jsonl"
    entities_path.write_text("".join(json.dumps(e) + "\n" for e in entities))

    spark = (SparkSession.builder.master("local[2]").appName("reprise-test")
             .config("spark.sql.shuffle.partitions", "4").config("spark.ui.enabled", "false").getOrCreate())
    try:
        entity_df = spark.createDataFrame(entities, "user_id string, event_timestamp string, label bigint")
        cases = [("created", None), ("event", None), ("created", pinned), ("event", pinned)]
        compared = 0
        for cutoff, version in cases:
            out = tmp_path / f"snapshot-{cutoff}-{version}.jsonl"
            args = [*store, "snapshot", "--features", ",".join(FEATURES), "--entities", str(entities_path),
                    "--out", str(out), "--cutoff", cutoff]
            if version is not None:
                args += ["--as-of-version", str(version)]
            run(*args)
            expected = [json.loads(line) for line in out.read_text().splitlines()]
            got = [r.asDict(recursive=True) for r in
                   snapshot(spark, entity_df, FEATURES, export_dir, as_of_version=version, cutoff=cutoff).collect()]
            assert len(got) == len(expected) == len(entities)
            present = 0
            for i, (want, have) in enumerate(zip(expected, got)):
                assert have["user_id"] == want["user_id"] and have["label"] == want["label"]
                for column in want:
                    if column in ("user_id", "event_timestamp", "label"):
                        continue
                    assert same(have[column], want[column]), (cutoff, version, i, column, have[column], want[column])
                    present += want[column] is not None
                    compared += 1
            assert present > len(entities) * 5, "the data exercise the features"
        assert compared == 4 * len(entities) * len(FEATURES)
    finally:
        spark.stop()
