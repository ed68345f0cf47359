"""The client: one method per endpoint a trainer needs, DataFrames in and
out, bounded retries with backoff on what is safe to repeat, timeouts, an
optional API key, and errors that carry the server's error code and field.
"""

from __future__ import annotations

import tempfile
import math
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union, cast

import pandas as pd
import pyarrow.parquet as pq
import requests
import urllib3

API_KEY_HEADER = "x-api-key"
JSON = Dict[str, Any]


class RepriseError(Exception):
    """An error answer of the server (or no answer at all).

    ``status`` is the HTTP status (``None`` without an answer), ``code`` the
    server's snake_case error code (``unknown_feature``, ``missing_context``,
    ...), ``field`` the input field at fault (``rows[3].plays_7d``) if any.
    """

    def __init__(self, status: Optional[int], code: str, message: str, field: Optional[str] = None):
        super().__init__(f"{status} {code}: {message}" if status else f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field


@dataclass
class RetryPolicy:
    """Bounded retries: only a refused connection and 503/429 answers (the
    server refused and wrote nothing) are repeated, after an exponential
    backoff with jitter (or the server's ``Retry-After``)."""

    max_retries: int = 3
    initial_backoff: float = 0.1
    max_backoff: float = 5.0

    def backoff(self, attempt: int, retry_after: Optional[float] = None) -> float:
        """Seconds to wait before retry ``attempt`` (0-based)."""
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        full = min(self.initial_backoff * (2.0 ** attempt), self.max_backoff)
        return full / 2 + random.random() * full / 2


def _rfc3339(value: Any) -> Any:
    """Timestamps (pandas, datetime) as RFC 3339 UTC strings; others as they are."""
    if isinstance(value, pd.Timestamp):
        if value.tzinfo is None:
            value = value.tz_localize("UTC")
        return value.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def _json_value(value: Any) -> Any:
    """A DataFrame cell as JSON: NaN/NaT/None → null, numpy scalars → Python."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _json_value(value.tolist())
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, datetime)):
        return _rfc3339(value)
    return value


def _records(df: pd.DataFrame) -> List[JSON]:
    """DataFrame rows as JSON objects (timestamps as RFC 3339, NaN as null)."""
    columns = list(df.columns)
    return [
        {c: _json_value(v) for c, v in zip(columns, row)}
        for row in df.itertuples(index=False, name=None)
    ]


class Client:
    """A client of one Reprise server.

    :param url: ``http://127.0.0.1:8080``
    :param api_key: sent as ``x-api-key`` when given
    :param timeout: seconds for a whole request
    :param retry: what is retried and how long to wait
    """

    def __init__(
        self,
        url: str,
        api_key: Optional[str] = None,
        timeout: float = 30.0,
        retry: Optional[RetryPolicy] = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._session = requests.Session()
        if api_key:
            self._session.headers[API_KEY_HEADER] = api_key

    # --- features ---------------------------------------------------------

    def push(self, view: str, df: pd.DataFrame, backfill: bool = False, batch_size: int = 10_000) -> JSON:
        """Writes the rows of ``df`` (join keys, ``event_timestamp``, features)
        to ``view``, ``batch_size`` rows per atomic batch. Returns the number
        written and the store version of the last batch."""
        written, version = 0, None
        records = _records(df)
        for start in range(0, len(records), batch_size):
            answer = self._request(
                "POST",
                "/v1/push",
                {"view": view, "backfill": backfill, "rows": records[start : start + batch_size]},
            ).json()
            written += answer["written"]
            version = answer["store_version"]
        return {"written": written, "store_version": version}

    def online_features(
        self, features: Sequence[str], entities: Union[pd.DataFrame, Sequence[Mapping[str, Any]]]
    ) -> pd.DataFrame:
        """The newest values of ``features`` for each entity, one row per
        entity in order: the entity columns, one column per feature named
        ``view__feature``, and its status in ``view__feature__status``."""
        rows = _records(entities) if isinstance(entities, pd.DataFrame) else [dict(e) for e in entities]
        answer = self._request("POST", "/v1/online-features", {"features": list(features), "entities": rows}).json()
        out = pd.DataFrame(rows)
        for i, ref in enumerate(answer["features"]):
            name = _column(ref)
            out[name] = [r["values"][i] for r in answer["rows"]]
            out[name + "__status"] = [r["statuses"][i] for r in answer["rows"]]
        out.attrs["store_version"] = answer["store_version"]
        return out

    def create_snapshot(
        self,
        entity_df: pd.DataFrame,
        features: Sequence[str],
        as_of_version: Optional[int] = None,
        cutoff: str = "created",
    ) -> JSON:
        """``POST /v1/snapshots``: ``entity_df`` holds the join keys,
        ``event_timestamp`` and any columns to pass through (labels)."""
        if "event_timestamp" not in entity_df.columns:
            raise ValueError("entity_df needs an `event_timestamp` column")
        body: JSON = {"features": list(features), "entity_rows": _records(entity_df), "cutoff": cutoff}
        if as_of_version is not None:
            body["as_of_version"] = as_of_version
        return _json(self._request("POST", "/v1/snapshots", body))

    def snapshot(
        self,
        entity_df: pd.DataFrame,
        features: Sequence[str],
        as_of_version: Optional[int] = None,
        cutoff: str = "created",
    ) -> pd.DataFrame:
        """A point-in-time snapshot as a DataFrame (read from its Parquet rows):
        every entity row in input order with its passthrough columns, then
        one column per feature named ``view__feature``. ``attrs`` holds the
        snapshot id and the store version it is pinned to; the same
        definition and ``as_of_version`` give the same rows forever."""
        info = self.create_snapshot(entity_df, features, as_of_version, cutoff)
        df = self.snapshot_rows(info["snapshot_id"])
        df.attrs.update(snapshot_id=info["snapshot_id"], store_version=info["store_version"])
        return df

    def snapshot_rows(self, snapshot_id: str) -> pd.DataFrame:
        """The rows of an existing snapshot (Parquet, streamed)."""
        response = self._request("GET", f"/v1/snapshots/{snapshot_id}/rows", params={"format": "parquet"}, stream=True)
        # Up to 64 MiB in memory, larger downloads spill to a temporary file.
        with tempfile.SpooledTemporaryFile(max_size=64 << 20) as buffer:
            for chunk in response.iter_content(chunk_size=1 << 20):
                buffer.write(chunk)
            buffer.seek(0)
            return cast(pd.DataFrame, pq.read_table(buffer).to_pandas())

    # --- serving ------------------------------------------------------------

    def recommendations(self, user_id: str, context: Mapping[str, Any], k: int = 20) -> JSON:
        """``POST /v1/recommendations``: request id, model version, arm,
        cold-start flag and the items with score and source."""
        return _json(self._request("POST", "/v1/recommendations", {"user_id": user_id, "context": dict(context), "k": k}))

    def rank(self, user_id: str, context: Mapping[str, Any], item_ids: Sequence[str]) -> pd.DataFrame:
        """Engagement probabilities of ``item_ids`` (columns item_id, probability)."""
        answer = self._request(
            "POST", "/v1/rank", {"user_id": user_id, "context": dict(context), "item_ids": list(item_ids)}
        ).json()
        df = pd.DataFrame(answer["scores"])
        df.attrs["model_version"] = answer["model_version"]
        return df

    def events(self, events: Iterable[Mapping[str, Any]]) -> int:
        """``POST /v1/events`` (play, skip, click, like, impression); returns
        how many were accepted."""
        body = {"events": [{k: _json_value(v) for k, v in e.items()} for e in events]}
        return int(_json(self._request("POST", "/v1/events", body))["accepted"])

    # --- models -------------------------------------------------------------

    def models(self) -> List[JSON]:
        """``GET /v1/models``: every stored model with kind, status
        (``serving``, ``candidate``, ``retired``) and metrics."""
        return cast(List[JSON], _json(self._request("GET", "/v1/models"))["models"])

    def retrain(self, **overrides: Any) -> str:
        """Starts a retraining run (``source``, ``metric``, ``margin``, ...
        override the server's settings); returns the run id."""
        return str(_json(self._request("POST", "/v1/retrain", overrides))["run_id"])

    def retrain_run(self, run_id: str) -> JSON:
        """``GET /v1/retrain/runs/{id}``: status, steps, decision and reason."""
        return _json(self._request("GET", f"/v1/retrain/runs/{run_id}"))

    def ready(self) -> int:
        """The store version once the server is ready."""
        return int(_json(self._request("GET", "/readyz"))["store_version"])

    # --- plumbing -----------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        body: Optional[JSON] = None,
        params: Optional[JSON] = None,
        stream: bool = False,
    ) -> requests.Response:
        attempt = 0
        while True:
            try:
                response = self._session.request(
                    method, self.url + path, json=body, params=params, timeout=self.timeout, stream=stream
                )
            except requests.ConnectionError as e:
                # Only a connection never made is safe to repeat: a dropped
                # one may have carried a write the server applied.
                if attempt >= self.retry.max_retries or not _never_connected(e):
                    raise RepriseError(None, "transport", str(e)) from e
                time.sleep(self.retry.backoff(attempt))
                attempt += 1
                continue
            except requests.Timeout as e:
                raise RepriseError(None, "timeout", f"no answer within {self.timeout} s") from e
            if response.status_code in (503, 429) and attempt < self.retry.max_retries:
                after = response.headers.get("Retry-After")
                time.sleep(self.retry.backoff(attempt, float(after) if after and after.isdigit() else None))
                attempt += 1
                continue
            if response.status_code >= 400:
                raise _error(response)
            return response


def _json(response: requests.Response) -> JSON:
    """The answer's JSON object."""
    return cast(JSON, response.json())


def _never_connected(e: requests.ConnectionError) -> bool:
    """Whether the request failed before a connection was made (refused,
    DNS, connect timeout)."""
    if isinstance(e, requests.ConnectTimeout):
        return True
    reason = getattr(e.args[0], "reason", None) if e.args else None
    return isinstance(reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError))


def _column(ref: str) -> str:
    """``view:feature`` / ``view@2:feature`` → ``view__feature``, as in snapshots."""
    view, feature = ref.split(":", 1)
    return f"{view.split('@')[0]}__{feature}"


def _error(response: requests.Response) -> RepriseError:
    try:
        detail = response.json()["error"]
        return RepriseError(response.status_code, detail["code"], detail["message"], detail.get("field"))
    except (ValueError, KeyError, TypeError):
        return RepriseError(response.status_code, "http_error", response.text)
