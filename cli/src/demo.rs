//! The demo data set: a small generated music catalogue (users, albums,
//! podcasts, playlists, listening statistics, interactions, embeddings,
//! raw play events from which the store computes activity aggregations)
//! pushed through the normal push path. Deterministic (fixed seed); event
//! times are spread over the last days before now, so TTLs hold.

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reprise_store::time::{format_rfc3339, now_micros, MICROS_PER_SECOND};
use reprise_store::FeatureStore;
use serde_json::{json, Map, Value as Json};

pub const USERS: usize = 1_000;
pub const ITEMS: usize = 600;
const DIM: usize = 16;
const GENRES: [&str; 8] = [
    "rock",
    "pop",
    "jazz",
    "hip-hop",
    "classical",
    "electronic",
    "folk",
    "news",
];
const KINDS: [&str; 3] = ["album", "podcast", "playlist"];
const COUNTRIES: [&str; 6] = ["SE", "US", "GB", "DE", "BR", "JP"];
const DEVICES: [&str; 4] = ["mobile", "web", "tv", "tablet"];
const AGE_BANDS: [&str; 5] = ["18-24", "25-34", "35-44", "45-54", "55+"];

pub fn user_id(i: usize) -> String {
    format!("u{i}")
}

pub fn item_id(i: usize) -> String {
    format!("i{i}")
}

/// Loads the demo data unless it is there already. Returns whether it loaded.
pub fn load(store: &FeatureStore) -> anyhow::Result<bool> {
    let probe: Map<String, Json> = [("user_id".to_owned(), Json::String(user_id(0)))]
        .into_iter()
        .collect();
    let present = store
        .online_features(&["user_profile:country".to_owned()], &[probe])?
        .rows[0]
        .statuses[0]
        == reprise_store::FeatureStatus::Present;
    if present {
        tracing::info!("demo data already loaded");
        return Ok(false);
    }
    let mut rng = StdRng::seed_from_u64(42);
    let now = now_micros();
    let ago = |rng: &mut StdRng, max_hours: i64| {
        format_rfc3339(now - rng.random_range(1..max_hours * 3600) * MICROS_PER_SECOND)
    };
    let vector = |rng: &mut StdRng| {
        (0..DIM)
            .map(|_| rng.random_range(-1.0..1.0f32))
            .collect::<Vec<f32>>()
    };

    let mut views: Vec<(&str, Vec<Json>)> = Vec::new();
    let (mut profiles, mut stats, mut user_vectors) = (Vec::new(), Vec::new(), Vec::new());
    for u in 0..USERS {
        let id = user_id(u);
        profiles.push(
            json!({"user_id": id, "event_timestamp": ago(&mut rng, 24 * 365),
            "country": COUNTRIES[rng.random_range(0..COUNTRIES.len())],
            "age_band": AGE_BANDS[rng.random_range(0..AGE_BANDS.len())],
            "premium": rng.random_bool(0.4)}),
        );
        let plays = rng.random_range(0..200);
        stats.push(json!({"user_id": id, "event_timestamp": ago(&mut rng, 48),
            "plays_7d": plays, "skips_7d": if rng.random_bool(0.1) { Json::Null } else { json!(rng.random_range(0..=plays)) },
            "minutes_7d": f64::from(plays) * rng.random_range(2.0..6.0),
            "favourite_genre": GENRES[rng.random_range(0..GENRES.len())]}));
        user_vectors.push(json!({"user_id": id, "event_timestamp": ago(&mut rng, 24), "vector": vector(&mut rng)}));
    }
    let (mut catalog, mut item_stats, mut item_vectors) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..ITEMS {
        let id = item_id(i);
        let kind = KINDS[i % KINDS.len()];
        let genre = GENRES[rng.random_range(0..GENRES.len())];
        catalog.push(json!({"item_id": id, "event_timestamp": ago(&mut rng, 24 * 365), "kind": kind, "genre": genre,
            "release_year": rng.random_range(1960..2027), "duration_s": rng.random_range(120..10_000),
            "tags": [genre, kind]}));
        item_stats.push(json!({"item_id": id, "event_timestamp": ago(&mut rng, 72),
            "plays_7d": rng.random_range(0..50_000), "completion_rate": rng.random_range(0.0..1.05),
            "popularity": rng.random_range(0.0..1.0)}));
        item_vectors.push(json!({"item_id": id, "event_timestamp": ago(&mut rng, 24), "vector": vector(&mut rng)}));
    }
    let mut interactions = Vec::new();
    for u in 0..USERS {
        for _ in 0..10 {
            let plays = rng.random_range(1..30);
            interactions.push(json!({"user_id": user_id(u), "item_id": item_id(rng.random_range(0..ITEMS)),
                "event_timestamp": ago(&mut rng, 24 * 60), "plays": plays, "skips": rng.random_range(0..=plays),
                "last_rating": rng.random_range(1..=5) as f64}));
        }
    }
    // Raw listening events: the store computes the user_plays and
    // item_plays aggregations from them. Each user leans towards two genres.
    let mut plays = Vec::new();
    for u in 0..USERS {
        let favourite = [
            rng.random_range(0..GENRES.len()),
            rng.random_range(0..GENRES.len()),
        ];
        for _ in 0..20 {
            let item = loop {
                let i = rng.random_range(0..ITEMS);
                let genre = catalog[i]["genre"].as_str().unwrap_or_default();
                if rng.random_bool(0.3) || favourite.iter().any(|f| GENRES[*f] == genre) {
                    break i;
                }
            };
            plays.push(json!({"user_id": user_id(u), "item_id": item_id(item),
                "event_timestamp": ago(&mut rng, 24 * 30), "played_seconds": rng.random_range(1..1_200),
                "device": DEVICES[rng.random_range(0..DEVICES.len())]}));
        }
    }
    views.push(("user_profile", profiles));
    views.push(("user_stats", stats));
    views.push(("user_embedding", user_vectors));
    views.push(("item_catalog", catalog));
    views.push(("item_stats", item_stats));
    views.push(("item_embedding", item_vectors));
    views.push(("user_item_stats", interactions));
    views.push(("play", plays));
    for (view, rows) in views {
        for batch in rows.chunks(5_000) {
            store
                .push(view, batch, true)
                .with_context(|| format!("pushing demo rows to {view}"))?;
        }
        tracing::info!(view, rows = rows.len(), "demo data pushed");
    }
    Ok(true)
}
