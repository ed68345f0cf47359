//! The MovieLens importer (`reprise import movielens DIR`): loads MovieLens-100k (the `ml-100k.user`,
//! `.item` and `.inter` files of RecBole's atomic format) into the store
//! through the normal push path.
//!
//! Views (migrations/0006_movielens.toml, 0012_movielens_events.toml): user
//! attributes, item metadata, and one `ml_rating` event per rating
//! (rating >= 4 = liked; its genres looked up from `ml_item` as of its time).
//! Only raw events and attributes are pushed: the activity features (plays,
//! likes, mean rating, genre likes so far) are aggregations the store
//! computes, so a point-in-time snapshot at time t sees exactly the ratings
//! made up to t (a training row for the event at t should ask for t minus
//! one second, so its own rating is not among its features). Rows are
//! backfills: their created time is their event time.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Result, TrainError};
use reprise_store::time::{format_rfc3339, MICROS_PER_SECOND};
use reprise_store::FeatureStore;
use serde_json::{json, Value as Json};

/// A rating >= this is a like (an engaged play); lower is a skip.
pub const LIKE_THRESHOLD: f64 = 4.0;

/// The view holding one row per rating event (user × item).
pub const RATINGS_VIEW: &str = "ml_rating";

/// Rows per push batch.
const BATCH: usize = 10_000;

/// One rating event.
#[derive(Debug, Clone)]
pub struct Rating {
    pub user: String,
    pub item: String,
    pub rating: f64,
    pub timestamp: i64,
}

/// Reads a RecBole atomic file: a tab-separated header of `name:type`
/// columns, then rows. Returns rows as column-name → text maps.
fn read_atomic(path: &Path) -> Result<Vec<HashMap<String, String>>> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::data(path, e.to_string()))?;
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .ok_or_else(|| TrainError::data(path, "is empty"))?
        .split('\t')
        .map(|c| c.split(':').next().unwrap_or(c).to_owned())
        .collect();
    Ok(lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            header
                .iter()
                .cloned()
                .zip(line.split('\t').map(str::to_owned))
                .collect()
        })
        .collect())
}

fn field<'a>(row: &'a HashMap<String, String>, name: &str, path: &Path) -> Result<&'a str> {
    row.get(name)
        .map(String::as_str)
        .ok_or_else(|| TrainError::data(path, format!("a row lacks the `{name}` column")))
}

fn parse<T: std::str::FromStr>(text: &str, column: &str, path: &Path) -> Result<T> {
    text.trim()
        .parse()
        .map_err(|_| TrainError::data(path, format!("`{column}` value `{text}` is not a number")))
}

/// The rating events of `ml-100k.inter`, in time order (ties by user, item).
pub fn read_ratings(dir: &Path) -> Result<Vec<Rating>> {
    let path = dir.join("ml-100k.inter");
    let mut ratings = read_atomic(&path)?
        .iter()
        .map(|row| {
            Ok(Rating {
                user: field(row, "user_id", &path)?.to_owned(),
                item: field(row, "item_id", &path)?.to_owned(),
                rating: parse(field(row, "rating", &path)?, "rating", &path)?,
                timestamp: parse::<f64>(field(row, "timestamp", &path)?, "timestamp", &path)?
                    as i64,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    ratings.sort_by(|a, b| (a.timestamp, &a.user, &a.item).cmp(&(b.timestamp, &b.user, &b.item)));
    Ok(ratings)
}

fn ts(seconds: i64) -> String {
    format_rfc3339(seconds * MICROS_PER_SECOND)
}

struct Pusher<'a> {
    store: &'a FeatureStore,
    pending: HashMap<&'static str, Vec<Json>>,
    written: u64,
}

impl Pusher<'_> {
    fn add(&mut self, view: &'static str, row: Json) -> Result<()> {
        let rows = self.pending.entry(view).or_default();
        rows.push(row);
        if rows.len() >= BATCH {
            let rows = std::mem::take(rows);
            self.push(view, rows)?;
        }
        Ok(())
    }

    fn push(&mut self, view: &str, rows: Vec<Json>) -> Result<()> {
        self.store.push(view, &rows, true)?;
        self.written += rows.len() as u64;
        Ok(())
    }

    /// Pushes every pending row.
    fn flush(&mut self) -> Result<()> {
        for (view, rows) in std::mem::take(&mut self.pending) {
            if !rows.is_empty() {
                self.push(view, rows)?;
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<u64> {
        self.flush()?;
        Ok(self.written)
    }
}

/// Imports the data set in `dir`; `progress(done, total)` hears of the
/// rating events as they go. Returns the number of rows pushed.
pub fn import(store: &FeatureStore, dir: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<u64> {
    let ratings = read_ratings(dir)?;
    let Some(first) = ratings.first().map(|r| r.timestamp) else {
        return Err(TrainError::data(dir, "holds no ratings"));
    };
    // Attributes and metadata are known from before the first rating.
    let known_from = ts(first - 1);
    let mut pusher = Pusher {
        store,
        pending: HashMap::new(),
        written: 0,
    };

    let users_path = dir.join("ml-100k.user");
    for row in read_atomic(&users_path)? {
        let age: i64 = parse(field(&row, "age", &users_path)?, "age", &users_path)?;
        pusher.add(
            "ml_user",
            json!({"user_id": field(&row, "user_id", &users_path)?, "event_timestamp": known_from, "age": age,
                   "gender": field(&row, "gender", &users_path)?, "occupation": field(&row, "occupation", &users_path)?,
                   "zip_prefix": field(&row, "zip_code", &users_path)?.chars().next().map(String::from)}),
        )?;
    }
    let items_path = dir.join("ml-100k.item");
    for row in read_atomic(&items_path)? {
        let id = field(&row, "item_id", &items_path)?.to_owned();
        let genres: Vec<&str> = row.get("class").map_or(Vec::new(), |c| {
            c.split(' ').filter(|g| !g.is_empty()).collect()
        });
        pusher.add(
            "ml_item",
            json!({"item_id": id, "event_timestamp": known_from, "title": row.get("movie_title"),
                   "year": row.get("release_year").and_then(|y| y.parse::<i64>().ok()), "genres": genres}),
        )?;
    }

    // Attributes first: each rating's genres are looked up as of its time.
    pusher.flush()?;
    let total = ratings.len() as u64;
    for (done, rating) in ratings.iter().enumerate() {
        if done % 1000 == 0 {
            progress(done as u64, total);
        }
        pusher.add(
            RATINGS_VIEW,
            json!({"user_id": rating.user, "item_id": rating.item, "event_timestamp": ts(rating.timestamp),
                   "rating": rating.rating, "liked": rating.rating >= LIKE_THRESHOLD}),
        )?;
    }
    progress(total, total);
    pusher.finish()
}
