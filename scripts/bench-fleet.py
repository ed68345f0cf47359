#!/usr/bin/env python3
"""Single node vs a fleet (leader + 2 replicas on a 3+3 Redis Cluster), on
this machine, with the repository's load tester:

1. `reprise serve --demo` alone: online 1x10 and recommendations (k=10),
   16 connections, closed model.
2. `scripts/fleet start` (ports 8080-8082, Redis 7000-7005): online 1x10 on
   one replica; on both replicas at once (8 connections each); and
   recommendations through a replica (forwarded to the leader).
3. Replication lag under a push load on the leader: a probe writes a new
   value to the leader every 50 ms and times how long until a replica
   answers it.

    cargo build --workspace --all-targets
    python3 scripts/bench-fleet.py [--duration 10]

Every process (servers, Redis, load testers) shares this machine's cores.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", "/var/tmp/reprise-target")
REPRISE = os.path.join(TARGET, "debug", "reprise")
LOADTEST = os.path.join(TARGET, "debug", "reprise-loadtest")


def wait_ready(url, seconds=300):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/readyz", timeout=1)
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    sys.exit(f"{url} not ready")


def loadtest(url, scenario, connections, duration, out):
    """Runs one scenario; returns the scenario's report and the baseline's."""
    subprocess.run([LOADTEST, "--url", url, "--scenario", scenario, "--connections", str(connections),
                    "--duration", str(duration), "--warmup", "2", "--users", "500",
                    "--max-error-rate", "0.01", "--json", out],
                   check=True, stdout=subprocess.DEVNULL)
    report = json.load(open(out))
    return {s["scenario"]: s for s in report["scenarios"]}


def row(label, s):
    lat = s["latency"]
    return (f"| {label} | {s['throughput_rps']:,.0f} | {lat['p50_us'] / 1000:.2f} ms | "
            f"{lat['p99_us'] / 1000:.2f} ms | {s['errors']} |")


def post(url, path, body):
    request = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(request, timeout=5))


def lag_probe(leader, replica, seconds):
    """Visibility latency of single-row writes on the leader, seen from a
    replica, in milliseconds."""
    samples = []
    n = 0
    deadline = time.time() + seconds
    while time.time() < deadline:
        n += 1
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
        post(leader, "/v1/push", {"view": "user_stats", "rows": [
            {"user_id": "lag-probe", "event_timestamp": stamp, "plays_7d": n}]})
        acked = time.perf_counter()
        while True:
            answer = post(replica, "/v1/online-features",
                          {"features": ["user_stats:plays_7d"], "entities": [{"user_id": "lag-probe"}]})
            if answer["rows"][0]["values"][0] == n:
                samples.append((time.perf_counter() - acked) * 1000)
                break
            time.sleep(0.001)
        time.sleep(0.05)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.99) - 1)], len(samples)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-fleet-")
    rows = []

    single = subprocess.Popen([REPRISE, "--data-dir", f"{work}/single", "serve", "--demo",
                               "--listen", "127.0.0.1:18600"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        url = "http://127.0.0.1:18600"
        wait_ready(url)
        r = loadtest(url, "online_1x10", 16, args.duration, f"{work}/single-online.json")
        rows.append(row("single node: `/healthz` (ceiling)", r["baseline"]))
        rows.append(row("single node: online 1x10", r["online_1x10"]))
        r = loadtest(url, "recommendations", 16, args.duration, f"{work}/single-recs.json")
        rows.append(row("single node: recommendations k=10", r["recommendations"]))
    finally:
        single.terminate()
        single.wait()

    fleet_dir = f"{work}/fleet"
    subprocess.run([f"{ROOT}/scripts/fleet", "start", fleet_dir], check=True, stdout=subprocess.DEVNULL)
    try:
        leader, a, b = "http://127.0.0.1:8080", "http://127.0.0.1:8081", "http://127.0.0.1:8082"
        r = loadtest(a, "online_1x10", 16, args.duration, f"{work}/replica-online.json")
        rows.append(row("one replica: online 1x10", r["online_1x10"]))
        both = {}

        def run(name, url):
            both[name] = loadtest(url, "online_1x10", 8, args.duration, f"{work}/both-{name}.json")

        threads = [threading.Thread(target=run, args=(n, u)) for n, u in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = sum(both[n]["online_1x10"]["throughput_rps"] for n in both)
        p99 = max(both[n]["online_1x10"]["latency"]["p99_us"] for n in both) / 1000
        rows.append(f"| two replicas at once: online 1x10 (8 conn. each) | {total:,.0f} | - | {p99:.2f} ms (worse of two) | "
                    f"{sum(both[n]['online_1x10']['errors'] for n in both)} |")
        r = loadtest(a, "recommendations", 16, args.duration, f"{work}/replica-recs.json")
        rows.append(row("recommendations through a replica (forwarded)", r["recommendations"]))

        idle = lag_probe(leader, a, 5)
        pusher = subprocess.Popen([LOADTEST, "--url", leader, "--scenario", "push", "--connections", "4",
                                   "--duration", str(args.duration + 4), "--warmup", "0"],
                                  stdout=subprocess.DEVNULL)
        time.sleep(1)
        busy = lag_probe(leader, a, args.duration)
        pusher.wait()
    finally:
        subprocess.run([f"{ROOT}/scripts/fleet", "stop", fleet_dir], stdout=subprocess.DEVNULL)

    print("| | req/s | p50 | p99 | errors |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print("| replication lag (write acknowledged on the leader → visible on a replica) | p50 | p99 | probes |")
    print("|---|---|---|---|")
    print(f"| idle | {idle[0]:.1f} ms | {idle[1]:.1f} ms | {idle[2]} |")
    print(f"| under a push load (4 connections x 100 rows) | {busy[0]:.1f} ms | {busy[1]:.1f} ms | {busy[2]} |")


if __name__ == "__main__":
    main()
