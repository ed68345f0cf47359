"""The Python client against the real server: DataFrame round trips,
point-in-time snapshots, errors with the server's code and field, the API
key, retries, and the serving endpoints."""

from __future__ import annotations

import http.server
import subprocess
import threading
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from reprise import Client, RepriseError, RetryPolicy

from conftest import BINARY


def users(n: int, plays_offset: int = 0, at: datetime | None = None) -> pd.DataFrame:
    at = at or datetime.now(timezone.utc) - timedelta(hours=1)
    return pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n)],
            "event_timestamp": pd.to_datetime([at] * n, utc=True),
            "plays_7d": [i + plays_offset for i in range(n)],
            "favourite_genre": ["jazz" if i % 2 else "rock" for i in range(n)],
        }
    )


def test_push_a_dataframe_and_snapshot_it_back(start_server):
    client = Client(start_server().url)
    pushed = client.push("user_stats", users(250), batch_size=100)
    assert pushed["written"] == 250

    entities = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(250)] + ["stranger"],
            "event_timestamp": [datetime.now(timezone.utc)] * 251,
            "label": [i % 2 for i in range(251)],
        }
    )
    features = ["user_stats:plays_7d", "user_stats:favourite_genre"]
    df = client.snapshot(entities, features)
    assert list(df["user_id"]) == list(entities["user_id"])
    assert list(df["label"]) == list(entities["label"])
    assert df["user_stats__plays_7d"].iloc[:250].tolist() == list(range(250))
    assert df["user_stats__favourite_genre"].iloc[:250].tolist() == users(250)["favourite_genre"].tolist()
    assert pd.isna(df["user_stats__plays_7d"].iloc[250])
    pinned = df.attrs["store_version"]

    # Later writes do not change a snapshot pinned to the earlier version.
    client.push("user_stats", users(250, plays_offset=1000))
    again = client.snapshot(entities, features, as_of_version=pinned)
    pd.testing.assert_frame_equal(again, df)
    # Asked as of now, the newer rows show (they were created after the
    # first entity times, so those do not see them: point-in-time).
    newest = client.snapshot(entities.assign(event_timestamp=datetime.now(timezone.utc)), features)
    assert newest["user_stats__plays_7d"].iloc[0] == 1000


def test_online_features_come_back_as_a_dataframe(start_server):
    client = Client(start_server().url)
    client.push("user_stats", users(3))
    df = client.online_features(["user_stats:plays_7d"], [{"user_id": "u2"}, {"user_id": "nobody"}])
    assert df["user_stats__plays_7d"].tolist()[0] == 2
    assert df["user_stats__plays_7d__status"].tolist() == ["PRESENT", "NOT_FOUND"]
    assert df.attrs["store_version"] >= 1


def test_a_bad_row_names_the_field_and_writes_nothing(start_server):
    client = Client(start_server().url)
    bad = users(3)
    bad["plays_7d"] = [1, "many", 3]
    with pytest.raises(RepriseError) as e:
        client.push("user_stats", bad)
    assert (e.value.status, e.value.code, e.value.field) == (400, "wrong_type", "rows[1].plays_7d")
    df = client.online_features(["user_stats:plays_7d"], [{"user_id": "u0"}])
    assert df["user_stats__plays_7d__status"].tolist() == ["NOT_FOUND"]


def test_the_api_key_is_sent(start_server, tmp_path):
    keys = tmp_path / "keys.toml"
    made = subprocess.run(
        [str(BINARY), "keys", "add", "--name", "trainer", "--scopes", "read", "--file", str(keys)],
        capture_output=True, text=True, check=True,
    )
    key = made.stdout.strip()
    server = start_server("--keys", str(keys))
    with pytest.raises(RepriseError) as e:
        Client(server.url).models()
    assert (e.value.status, e.value.code, e.value.field) == (401, "unauthorized", "x-api-key")
    assert Client(server.url, api_key=key).models() == []
    with pytest.raises(RepriseError) as e:
        Client(server.url, api_key=key).push(
            "user_stats", pd.DataFrame([{"user_id": "u0", "event_timestamp": "2026-01-01T00:00:00Z", "plays_7d": 1}])
        )
    assert (e.value.status, e.value.code) == (403, "forbidden")


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first two requests, then a push result."""

    calls = 0

    def do_POST(self):  # noqa: N802 (http.server's naming)
        type(self).calls += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).calls <= 2:
            body, status = b'{"error": {"code": "overloaded", "message": "retry later"}}', 503
        else:
            body, status = b'{"written": 1, "store_version": 7}', 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_503_is_retried_and_a_refused_connection_too_but_not_forever():
    stub = http.server.HTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{stub.server_address[1]}"
    client = Client(url, retry=RetryPolicy(max_retries=3, initial_backoff=0.01))
    assert client.push("v", users(1)) == {"written": 1, "store_version": 7}
    assert _Flaky.calls == 3
    stub.shutdown()
    stub.server_close()

    # Nothing listens any more: the retries run out with a transport error.
    with pytest.raises(RepriseError) as e:
        Client(url, retry=RetryPolicy(max_retries=2, initial_backoff=0.01)).ready()
    assert (e.value.status, e.value.code) == (None, "transport")


def test_recommendations_rank_and_events(start_server, trained_data):
    client = Client(start_server("--retrain-every", "0", data=trained_data, catalog="movielens").url)
    context = {"device": "mobile", "country": "SE"}
    recs = client.recommendations("1", context, k=5)
    assert recs["model_version"] == "ranker-1" and len(recs["items"]) == 5
    ids = [i["item_id"] for i in recs["items"]]
    ranked = client.rank("1", context, ids)
    assert ranked["item_id"].tolist() == ids
    assert ranked["probability"].between(0, 1).all()
    played = [{"request_id": recs["request_id"], "user_id": "1", "item_id": ids[0], "type": "play",
               "timestamp": datetime.now(timezone.utc)}]
    assert client.events(played) == 1
    with pytest.raises(RepriseError) as e:
        client.recommendations("1", {"device": "tv"})
    assert (e.value.status, e.value.code, e.value.field) == (422, "missing_context", "context.country")
