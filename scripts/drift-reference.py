#!/usr/bin/env python3
"""Writes two CSV files with shifted and unshifted columns, and the distances
between them computed by scipy and numpy (the reference `reprise drift` is
held to, within 1e-9).

    scripts/drift-reference.py OUT_DIR   ->  OUT_DIR/{reference,current}.csv, expected.json
"""
import csv
import json
import os
import sys

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

PSI_EMPTY_BIN = 1e-4


def numeric(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ks = stats.ks_2samp(a, b, method="asymp")
    edges = np.histogram_bin_edges(np.concatenate([a, b]), bins="sturges")
    p = np.histogram(a, edges)[0].astype(float)
    q = np.histogram(b, edges)[0].astype(float)
    p, q = p / p.sum(), q / q.sum()
    pr, qr = np.where(p == 0, PSI_EMPTY_BIN, p), np.where(q == 0, PSI_EMPTY_BIN, q)
    return {
        "kind": "numeric",
        "ks": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "js_log2": float(jensenshannon(p, q, base=2) ** 2),
        "psi": float(np.sum((qr - pr) * np.log(qr / pr))),
        "wasserstein_norm": float(stats.wasserstein_distance(a, b) / max(np.std(a), 0.001)),
        "linf": float(ks.statistic),
    }


def categorical(a, b):
    values = sorted(set(a) | set(b))
    p = np.array([a.count(v) for v in values], dtype=float) / len(a)
    q = np.array([b.count(v) for v in values], dtype=float) / len(b)
    diff = np.abs(p - q)
    i = int(np.argmax(diff))
    return {
        "kind": "categorical",
        "linf": float(diff[i]),
        "linf_value": values[i],
        "js_log2": float(jensenshannon(p, q, base=2) ** 2),
    }


def main(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261129)
    n, m = 5000, 4000
    devices = ["mobile", "web", "tv", "tablet"]
    reference = {
        "plays": rng.poisson(12, n).astype(float),
        "minutes": rng.normal(40, 10, n),
        "minutes_shifted": rng.normal(40, 10, n),
        "rating": rng.uniform(1, 5, n).round(3),
        "device": list(rng.choice(devices, n, p=[0.5, 0.3, 0.1, 0.1])),
        "device_shifted": list(rng.choice(devices, n, p=[0.5, 0.3, 0.1, 0.1])),
    }
    current = {
        "plays": rng.poisson(12, m).astype(float),
        "minutes": rng.normal(40, 10, m),
        "minutes_shifted": rng.normal(46, 12, m),
        "rating": rng.uniform(1, 5, m).round(3),
        "device": list(rng.choice(devices, m, p=[0.5, 0.3, 0.1, 0.1])),
        "device_shifted": list(rng.choice(devices, m, p=[0.3, 0.3, 0.3, 0.1])),
    }
    # Some missing cells: empty in the file, left out of the distances.
    missing_ref = set(rng.choice(n, 200, replace=False).tolist())
    columns = list(reference)
    for name, data, size, missing in [("reference", reference, n, missing_ref), ("current", current, m, set())]:
        with open(os.path.join(out, f"{name}.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(columns)
            for i in range(size):
                row = []
                for c in columns:
                    v = data[c][i]
                    if c == "minutes" and i in missing:
                        row.append("")
                    elif isinstance(v, (float, np.floating)):
                        row.append(repr(float(v)))
                    else:
                        row.append(str(v))
                w.writerow(row)
    expected = {}
    for c in columns:
        a, b = reference[c], current[c]
        if c == "minutes":
            a = [v for i, v in enumerate(a) if i not in missing_ref]
        if isinstance(a[0], str):
            expected[c] = categorical(list(a), list(b))
        else:
            expected[c] = numeric(a, b)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"columns": expected}, f, indent=2)


if __name__ == "__main__":
    main(sys.argv[1])
