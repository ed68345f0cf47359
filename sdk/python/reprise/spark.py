"""Point-in-time training data on Spark, from a `reprise export` directory.

`snapshot(spark, entity_df, features, export_dir, as_of_version=None,
cutoff="created")` returns the rows `POST /v1/snapshots` would: for each
entity row and feature, the value from the row of that view and entity with
the greatest event time `<= t` (the row's `event_timestamp`), newer than
`t - ttl`, written at a store version `<= as_of_version` and, with the
`created` cutoff, created at or before `t`; ties go to the newest write
(store version, then write sequence). Derived features are computed by the
declared transforms, aggregations from their source events over each
window (`t - window < event time <= t`), exactly as the Rust store does:
`tests/test_spark.py` checks both agree cell by cell.

The definitions come from the export's manifest (the migration sources), so
the export directory is all a cluster job needs. Needs `pyspark` (and
`xxhash` for `hash_bucket`): `pip install 'reprise[spark]'`.

Not enforced here: retention (the store refuses a snapshot that would reach
history it dropped; an export keeps rows exported before they expired).
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

MICROS_PER_SECOND = 1_000_000
_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}


def parse_duration(text: str) -> int:
    """`0`, `90s`, `15m`, `1h`, `30d` in microseconds (as the store reads them)."""
    text = text.strip()
    if text == "0":
        return 0
    match = re.fullmatch(r"(\d+)([smhd])", text)
    if not match:
        raise ValueError(f"`{text}` is not a duration like 30s, 15m, 1h or 7d")
    return int(match.group(1)) * _UNITS[match.group(2)] * MICROS_PER_SECOND


def _window_name(window: str) -> str:
    return "all" if window.strip() == "0" else window.strip()


@dataclass
class Feature:
    name: str
    type: str
    transform: Optional[Dict[str, Any]] = None


@dataclass
class AggColumn:
    name: str
    op: str
    input: Optional[str]
    window: int
    filter: Optional[Dict[str, Any]]
    bucket_by: Optional[str]
    vocabulary: List[str]


@dataclass
class View:
    name: str
    version: int
    kind: str
    join_keys: List[str]
    ttl: int
    features: List[Feature]
    source: Optional["View"] = None
    columns: List[AggColumn] = field(default_factory=list)
    horizon: int = 0

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"view `{self.label}` has no feature `{name}`")


class Registry:
    """The views the export's definitions declare (the parts snapshots use)."""

    def __init__(self, definitions: Sequence[Dict[str, Any]]) -> None:
        self.join_keys: Dict[str, str] = {}
        self.views: Dict[Tuple[str, int], View] = {}
        for definition in sorted(definitions, key=lambda d: int(d["store_version"])):
            self._apply(tomllib.loads(definition["source"]))

    def newest(self, name: str) -> View:
        versions = [v for (n, v) in self.views if n == name]
        if not versions:
            raise KeyError(f"unknown feature view `{name}`")
        return self.views[(name, max(versions))]

    def view(self, spec: str) -> View:
        if "@" in spec:
            name, version = spec.split("@", 1)
            return self.views[(name, int(version))]
        return self.newest(spec)

    def _apply(self, doc: Dict[str, Any]) -> None:
        for entity in doc.get("entity", []):
            self.join_keys[entity["name"]] = entity.get("join_key", entity["name"] + "_id")
        for fv in doc.get("feature_view", []):
            features = [Feature(f["name"], f["type"], f.get("transform")) for f in fv.get("feature", [])]
            view = View(fv["name"], int(fv.get("version", 1)), fv.get("kind", "state"),
                        [self.join_keys[e] for e in fv["entities"]], parse_duration(str(fv.get("ttl", "0"))),
                        features)
            self.views[(view.name, view.version)] = view
        for agg in doc.get("aggregation", []):
            source = self.view(agg["source"])
            keys = [self.join_keys[e] for e in agg["entities"]]
            # The grouped keys follow the source view's order.
            keys = [k for k in source.join_keys if k in keys]
            columns: List[AggColumn] = []
            agg_features: List[Feature] = []
            for f in agg.get("feature", []):
                op = f.get("op", "count")
                for window in f.get("windows", ["0"]):
                    name = (f"{f['name']}_{_window_name(window)}" if op == "count"
                            else f"{f['name']}_{op}_{_window_name(window)}")
                    columns.append(AggColumn(name, op, f.get("input"), parse_duration(window),
                                             f.get("filter"), f.get("bucket_by"), list(f.get("vocabulary", []))))
                    agg_features.append(Feature(name, _agg_type(op, f, source)))
            for d in agg.get("derived", []):
                agg_features.append(Feature(d["name"], d["type"], d.get("transform")))
            horizon: Optional[int] = 0
            for c in columns:
                horizon = None if (c.window == 0 or horizon is None) else max(horizon, c.window)
            view = View(agg["name"], int(agg.get("version", 1)), "aggregation", keys, 0, agg_features,
                        source, columns, horizon or 0)
            self.views[(view.name, view.version)] = view


def _agg_type(op: str, f: Dict[str, Any], source: View) -> str:
    if f.get("bucket_by"):
        return "float_vector"
    if op in ("count", "distinct_count"):
        return "int64"
    if op == "last":
        return source.feature(f["input"]).type
    return "float64"


# --- Spark ---------------------------------------------------------------

def _spark_type(feature_type: str) -> str:
    return {"bool": "boolean", "int64": "bigint", "float64": "double", "string": "string",
            "float_vector": "array<float>", "string_list": "array<string>"}[feature_type]


def _transform(F: Any, spec: Dict[str, Any], columns: Dict[str, Any], event_us: Any, input_type: Optional[str]) -> Any:
    """A declared transform as a Spark column (`transform.rs`, once more)."""
    kind = spec["kind"]
    source = spec.get("input", "event_timestamp")
    x = event_us if source == "event_timestamp" else columns[source]

    def finite(c: Any) -> Any:
        return F.when(F.isnan(c) | (F.abs(c) == float("inf")), F.lit(None)).otherwise(c)

    num = x.cast("double")
    if kind == "scale":
        return finite(num * float(spec.get("factor", 1.0)) + float(spec.get("offset", 0.0)))
    if kind == "log1p":
        return F.when(num <= -1.0, F.lit(None)).otherwise(finite(F.log1p(num)))
    if kind == "clip":
        out = num
        if spec.get("min") is not None:
            out = F.greatest(out, F.lit(float(spec["min"])))
        if spec.get("max") is not None:
            out = F.least(out, F.lit(float(spec["max"])))
        return F.when(num.isNull(), F.lit(None)).otherwise(finite(out))
    if kind == "bucketize":
        count = sum((F.when(num >= F.lit(float(b)), 1).otherwise(0) for b in spec["boundaries"]), F.lit(0))
        return F.when(num.isNull() | F.isnan(num), F.lit(None)).otherwise(count.cast("bigint"))
    if kind in ("hour_of_day", "day_of_week"):
        micros = event_us if source == "event_timestamp" else x.cast("bigint") * MICROS_PER_SECOND
        if kind == "hour_of_day":
            return F.pmod(F.floor(micros / (3_600 * MICROS_PER_SECOND)), F.lit(24)).cast("bigint")
        # 1970-01-01 was a Thursday (3 with Monday = 0).
        return F.pmod(F.floor(micros / (86_400 * MICROS_PER_SECOND)) + 3, F.lit(7)).cast("bigint")
    if kind == "hash_bucket":
        buckets = int(spec["buckets"])

        def bucket(value: Any) -> Optional[int]:
            import xxhash  # type: ignore[import-not-found, unused-ignore]
            if value is None:
                return None
            return int(xxhash.xxh3_64_intdigest(str(value).encode()) % buckets)

        return F.udf(bucket, "bigint")(x.cast("string"))
    if kind == "one_hot":
        vocabulary = [str(v) for v in spec["vocabulary"]]
        vector = F.array(*[F.when(x == F.lit(v), 1.0).otherwise(0.0).cast("float") for v in vocabulary])
        return F.when(x.isNull(), F.lit(None)).otherwise(vector)
    if kind == "default":
        value = spec["value"]
        literal = F.lit(value)
        if input_type is not None:
            literal = literal.cast(_spark_type(input_type))
        return F.coalesce(x, literal)
    raise ValueError(f"unknown transform kind `{kind}`")


def _with_features(F: Any, df: Any, view: View, prefix: str, event_us: Any) -> Dict[str, Any]:
    """Every feature of `view` as a column over `df` (stored ones as read,
    derived ones in declaration order)."""
    columns: Dict[str, Any] = {}
    for feature in view.features:
        if feature.transform is None:
            columns[feature.name] = F.col(f"{prefix}{feature.name}")
        else:
            source = feature.transform.get("input", "event_timestamp")
            input_type = None if source == "event_timestamp" else view.feature(source).type
            columns[feature.name] = _transform(F, feature.transform, columns, event_us, input_type).cast(
                _spark_type(feature.type))
    return columns


def _equals(F: Any, word: str) -> Any:
    """`w -> w = word` for Spark's higher-order functions (one parameter:
    a second would be read as the element's index)."""
    return lambda w: w == F.lit(word)


def _filter(F: Any, spec: Optional[Dict[str, Any]], columns: Dict[str, Any]) -> Any:
    if spec is None:
        return F.lit(True)
    c = columns[spec["feature"]]
    value = spec["value"]
    if isinstance(value, bool):
        c, value = c.cast("boolean"), bool(value)
    elif isinstance(value, (int, float)):
        c, value = c.cast("double"), float(value)
    ops = {"<": c < value, "<=": c <= value, "==": c == value, "!=": c != value, ">=": c >= value, ">": c > value}
    return F.coalesce(ops[spec["op"]], F.lit(False))


def snapshot(spark: Any, entity_df: Any, features: Sequence[str], export_dir: str | Path,
             as_of_version: Optional[int] = None, cutoff: str = "created") -> Any:
    """The point-in-time join of `features` onto `entity_df` (join keys,
    `event_timestamp`, anything else passed through), as a Spark DataFrame
    with one column per feature named as the store names it."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if cutoff not in ("created", "event"):
        raise ValueError("cutoff must be `created` or `event`")
    export_dir = Path(export_dir)
    manifest = json.loads((export_dir / "manifest.json").read_text())
    exported = int(manifest["store_version"])
    pinned = exported if as_of_version is None else int(as_of_version)
    if pinned > exported:
        raise ValueError(f"as_of_version {pinned} is after the export's store version {exported}")
    registry = Registry(manifest["definitions"])
    files: Dict[str, List[str]] = {}
    for export in manifest["exports"]:
        for f in export["files"]:
            files.setdefault(f["view"], []).append(str(export_dir / f["path"]))

    def history(view: View) -> Any:
        paths = files.get(view.label, [])
        if not paths:
            schema = ", ".join([f"`{k}` string" for k in view.join_keys]
                               + ["event_timestamp timestamp", "created_timestamp timestamp",
                                  "store_version bigint", "sequence bigint"]
                               + [f"`{f.name}` {_spark_type(f.type)}" for f in view.features if f.transform is None])
            return spark.createDataFrame([], schema)
        df = spark.read.parquet(*paths).where(F.col("store_version") <= pinned)
        return (df.withColumn("__event_us", F.expr("unix_micros(event_timestamp)"))
                  .withColumn("__created_us", F.expr("unix_micros(created_timestamp)")))

    rows = entity_df.rdd.zipWithIndex().map(lambda pair: (*pair[0], pair[1])).toDF(
        [*entity_df.columns, "__row"])
    ts = F.col("event_timestamp")
    rows = rows.withColumn("__t", F.when(ts.cast("string").rlike("^[0-9]+$"), ts.cast("bigint"))
                           .otherwise(F.expr("unix_micros(to_timestamp(event_timestamp))")))
    out = rows
    by_view: Dict[str, List[Tuple[str, str, bool]]] = {}
    for ref in features:
        spec, name = ref.split(":", 1)
        view = registry.view(spec)
        column = f"{view.name}_v{view.version}__{name}" if "@" in spec else f"{view.name}__{name}"
        view.feature(name)
        by_view.setdefault(view.label, []).append((name, column, "@" in spec))
    for label, wanted in by_view.items():
        view = registry.view(label)
        keys = view.join_keys
        left = rows.select("__row", "__t", *[F.col(k).cast("string").alias(f"__k_{k}") for k in keys])
        if view.kind != "aggregation":
            hist = history(view).select(*[F.col(k).alias(f"__h_{k}") for k in keys], "__event_us", "__created_us",
                                        "store_version", "sequence",
                                        *[F.col(f.name).alias(f"__v_{f.name}") for f in view.features
                                          if f.transform is None])
            cond = [F.col(f"__k_{k}") == F.col(f"__h_{k}") for k in keys] + [F.col("__event_us") <= F.col("__t")]
            if view.ttl:
                cond.append(F.col("__event_us") > F.col("__t") - view.ttl)
            if cutoff == "created":
                cond.append(F.col("__created_us") <= F.col("__t"))
            joined = left.join(hist, on=[c for c in cond], how="left")
            order = Window.partitionBy("__row").orderBy(F.col("__event_us").desc_nulls_last(),
                                                        F.col("store_version").desc_nulls_last(),
                                                        F.col("sequence").desc_nulls_last())
            picked = joined.withColumn("__n", F.row_number().over(order)).where(F.col("__n") == 1)
            values = _with_features(F, picked, view, "__v_", F.col("__event_us"))
            found = F.col("__event_us").isNotNull()
            result = picked.select("__row", *[F.when(found, values[n]).alias(c) for n, c, _ in wanted])
        else:
            source = view.source
            assert source is not None
            events = history(source)
            event_values = _with_features(F, events, source, "", F.col("__event_us"))
            events = events.select(*[F.col(k).alias(f"__h_{k}") for k in keys], "__event_us", "__created_us",
                                   "store_version", "sequence",
                                   *[event_values[f.name].alias(f"__e_{f.name}") for f in source.features])
            cond = [F.col(f"__k_{k}") == F.col(f"__h_{k}") for k in keys] + [F.col("__event_us") <= F.col("__t")]
            if view.horizon:
                cond.append(F.col("__event_us") > F.col("__t") - view.horizon)
            if cutoff == "created":
                cond.append(F.col("__created_us") <= F.col("__t"))
            joined = left.join(events, on=cond, how="left")
            e = {f.name: F.col(f"__e_{f.name}") for f in source.features}
            aggs = []
            for col in view.columns:
                covers = F.col("__event_us").isNotNull() & _filter(F, col.filter, e)
                if col.window:
                    covers = covers & (F.col("__event_us") > F.col("__t") - col.window)
                x = e[col.input] if col.input else F.lit(None)
                if col.bucket_by:
                    bucket = e[col.bucket_by]
                    is_list = source.feature(col.bucket_by).type == "string_list"
                    amount = F.lit(1.0) if col.op == "count" else x.cast("double")
                    cells = []
                    for word in col.vocabulary:
                        hits = (F.size(F.filter(bucket, _equals(F, word))) if is_list
                                else F.when(bucket == F.lit(word), 1).otherwise(0))
                        cells.append(F.coalesce(F.sum(F.when(covers & amount.isNotNull(), hits * amount)), F.lit(0.0))
                                     .cast("float"))
                    aggs.append(F.array(*cells).alias(col.name))
                elif col.op == "count":
                    aggs.append(F.sum(F.when(covers, 1).otherwise(0)).cast("bigint").alias(col.name))
                elif col.op == "sum":
                    aggs.append(F.coalesce(F.sum(F.when(covers, x.cast("double"))), F.lit(0.0)).alias(col.name))
                elif col.op == "mean":
                    aggs.append(F.avg(F.when(covers, x.cast("double"))).alias(col.name))
                elif col.op in ("min", "max"):
                    fn = F.min if col.op == "min" else F.max
                    aggs.append(fn(F.when(covers, x.cast("double"))).alias(col.name))
                elif col.op == "last":
                    position = F.when(covers & x.isNotNull(),
                                      F.struct(F.col("__event_us"), F.col("store_version"), F.col("sequence")))
                    aggs.append(F.max_by(x, position).alias(col.name))
                elif col.op == "distinct_count":
                    key = F.when(covers, x.cast("string"))
                    count = F.countDistinct(key)
                    aggs.append(F.when(count == 0, F.lit(None)).otherwise(count).cast("bigint").alias(col.name))
                else:
                    raise ValueError(f"unknown aggregation op `{col.op}`")
            grouped = joined.groupBy("__row", "__t").agg(*aggs)
            stored = {c.name: F.col(c.name) for c in view.columns}
            values = dict(stored)
            for feature in view.features:
                if feature.transform is not None:
                    source_name = feature.transform.get("input", "event_timestamp")
                    input_type = None if source_name == "event_timestamp" else view.feature(source_name).type
                    values[feature.name] = _transform(F, feature.transform, values, F.col("__t"), input_type).cast(
                        _spark_type(feature.type))
            result = grouped.select("__row", *[values[n].alias(c) for n, c, _ in wanted])
        out = out.join(result, on="__row", how="left")
    return out.orderBy("__row").drop("__row", "__t")


__all__ = ["snapshot", "Registry", "parse_duration"]
