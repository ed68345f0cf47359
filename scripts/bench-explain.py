#!/usr/bin/env python3
"""Latency of the debugging path on a running server (one connection,
sequential): a recommendation with and without `"explain": true`, and the
served-log lookup with and without a replay.

    ./scripts/demo --listen 127.0.0.1:18400 &   # wait for /readyz
    python3 scripts/bench-explain.py http://127.0.0.1:18400
"""

import statistics
import sys
import time

import requests

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
CONTEXT = {"device": "web", "country": "SE"}
session = requests.Session()
served = []


def timed(call, n):
    samples = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def recommend(i, explain=False):
    answer = session.post(f"{URL}/v1/recommendations",
                          json={"user_id": f"u{i % 500}", "context": CONTEXT, "k": 10, "explain": explain})
    answer.raise_for_status()
    served.append(answer.json()["request_id"])


def lookup(i, replay):
    session.get(f"{URL}/v1/served/{served[i]}", params={"replay": "true"} if replay else {}).raise_for_status()


for i in range(100):  # warm the candidate cache of the first users
    recommend(i)
for name, call, n in [
    ("recommendations k=10", lambda i: recommend(i), 300),
    ("recommendations k=10, explain", lambda i: recommend(i, True), 300),
    ("GET /v1/served/{id}", lambda i: lookup(i, False), 200),
    ("GET /v1/served/{id}?replay=true", lambda i: lookup(i, True), 200),
]:
    p50, p99 = timed(call, n)
    print(f"{name:34} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
