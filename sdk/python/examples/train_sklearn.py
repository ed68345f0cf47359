"""Train a like-predictor on MovieLens the way an outside data scientist
would: labels from the rating log you have, features from Reprise as of
each rating (a point-in-time snapshot, so no rating sees its own future),
a scikit-learn model, AUC on the newest 20% of ratings.

    reprise serve --demo --movielens ~/.cache/reprise/ml-100k   # or: import movielens, serve
    python sdk/python/examples/train_sklearn.py --ratings ~/.cache/reprise/ml-100k/ml-100k.inter
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from reprise import Client

# MovieLens' genres in the order of `ml_user_ratings:genre_likes_all`.
GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
]
FEATURES = [
    "ml_user_ratings:plays_all",
    "ml_user_ratings:likes_all",
    "ml_user_ratings:rating_mean_all",
    "ml_item_ratings:plays_all",
    "ml_item_ratings:likes_all",
    "ml_item_ratings:rating_mean_all",
    "ml_user_ratings:genre_likes_all",
    "ml_item:genres",
    "ml_item:year",
    "ml_user:age",
]


def entity_rows(ratings_path: str) -> pd.DataFrame:
    """One row per rating: who, what, when (one second before the rating,
    so its own rating is not among its features) and the label."""
    ratings = pd.read_csv(ratings_path, sep="\t")
    ratings.columns = [c.split(":")[0] for c in ratings.columns]
    return pd.DataFrame(
        {
            "user_id": ratings["user_id"].astype(str),
            "item_id": ratings["item_id"].astype(str),
            "event_timestamp": pd.to_datetime(ratings["timestamp"] - 1, unit="s", utc=True),
            "liked": (ratings["rating"] >= 4).astype(int),
        }
    )


def model_inputs(df: pd.DataFrame) -> pd.DataFrame:
    """Like rates (smoothed) and the user's affinity to the item's genres."""

    def affinity(row) -> float:
        likes, genres = row["ml_user_ratings__genre_likes_all"], row["ml_item__genres"]
        if likes is None or genres is None or len(likes) == 0:
            return np.nan
        total = max(float(sum(likes)), 1.0)
        return float(sum(likes[GENRES.index(g)] for g in genres if g in GENRES)) / total

    return pd.DataFrame(
        {
            "user_plays": df["ml_user_ratings__plays_all"],
            "user_like_rate": (df["ml_user_ratings__likes_all"] + 1) / (df["ml_user_ratings__plays_all"] + 2),
            "user_mean_rating": df["ml_user_ratings__rating_mean_all"],
            "item_plays": df["ml_item_ratings__plays_all"],
            "item_like_rate": (df["ml_item_ratings__likes_all"] + 1) / (df["ml_item_ratings__plays_all"] + 2),
            "item_mean_rating": df["ml_item_ratings__rating_mean_all"],
            "genre_affinity": df.apply(affinity, axis=1),
            "year": df["ml_item__year"],
            "age": df["ml_user__age"],
        }
    ).astype(float)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--ratings", required=True, help="ml-100k.inter (RecBole atomic format)")
    args = parser.parse_args()

    # The key comes from the environment, never the command line (where
    # `ps` shows it to everyone on the machine).
    client = Client(args.url, api_key=os.environ.get("REPRISE_API_KEY"), timeout=300)
    entities = entity_rows(args.ratings)
    start = time.time()
    snapshot = client.snapshot(entities, FEATURES)
    print(
        f"snapshot {snapshot.attrs['snapshot_id']} pinned to store version "
        f"{snapshot.attrs['store_version']}: {len(snapshot)} rows in {time.time() - start:.1f}s"
    )
    snapshot = snapshot.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    x, y = model_inputs(snapshot), snapshot["liked"].to_numpy()
    split = int(len(snapshot) * 0.8)
    model = HistGradientBoostingClassifier(max_iter=200, random_state=0)
    model.fit(x.iloc[:split], y[:split])
    auc = roc_auc_score(y[split:], model.predict_proba(x.iloc[split:])[:, 1])
    print(f"trained on {split} ratings, {y[:split].mean():.3f} liked")
    print(f"AUC {auc:.4f} on the newest {len(snapshot) - split} ratings")


if __name__ == "__main__":
    main()
