//! Named scenarios against the demo catalogue (`reprise serve --demo`).

use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::json;

/// Users and items of the demo data set.
const DEMO_USERS: u32 = 1_000;
const DEMO_ITEMS: u32 = 600;

/// Ten features of one view: what a ranking request typically reads per user.
const USER_FEATURES: [&str; 10] = [
    "user_stats:plays_7d",
    "user_stats:skips_7d",
    "user_stats:minutes_7d",
    "user_stats:favourite_genre",
    "user_stats:plays_7d_log",
    "user_stats:skips_7d_filled",
    "user_stats:hours_7d",
    "user_stats:favourite_genre_bucket",
    "user_stats:updated_hour",
    "user_stats:updated_day",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// `GET /healthz`: the server's no-op ceiling.
    Baseline,
    /// Online read, 1 entity × 10 features.
    #[value(name = "online_1x10")]
    #[serde(rename = "online_1x10")]
    Online1x10,
    /// Online read, 100 entities × 10 features.
    #[value(name = "online_100x10")]
    #[serde(rename = "online_100x10")]
    Online100x10,
    /// Push a batch of 100 rows to `user_stats`.
    Push,
    /// 90% online 1×10, 10% push.
    Mixed,
    /// `POST /v1/recommendations` (k = 10) for a random user `1..=users`
    /// (MovieLens-format ids), context `mobile`/`SE`: retrieval, ~200
    /// candidates ranked, the served-feature log written.
    Recommendations,
}

/// One request to send: a GET without a body, a JSON POST with one.
pub struct Request {
    pub path: &'static str,
    pub body: Option<Vec<u8>>,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline",
            Scenario::Online1x10 => "online_1x10",
            Scenario::Online100x10 => "online_100x10",
            Scenario::Push => "push",
            Scenario::Mixed => "mixed",
            Scenario::Recommendations => "recommendations",
        }
    }

    /// The next request; `users` bounds the user ids of `recommendations`.
    pub fn request(self, rng: &mut SmallRng, users: u32) -> Request {
        match self {
            Scenario::Baseline => Request {
                path: "/healthz",
                body: None,
            },
            Scenario::Online1x10 => online(rng, 1),
            Scenario::Online100x10 => online(rng, 100),
            Scenario::Push => push(rng, 100),
            Scenario::Mixed => {
                if rng.random_bool(0.9) {
                    online(rng, 1)
                } else {
                    push(rng, 100)
                }
            }
            Scenario::Recommendations => {
                let user = rng.random_range(1..=users.max(1)).to_string();
                let body = json!({"user_id": user, "context": {"device": "mobile", "country": "SE"}, "k": 10});
                Request {
                    path: "/v1/recommendations",
                    body: Some(body.to_string().into_bytes()),
                }
            }
        }
    }
}

fn online(rng: &mut SmallRng, entities: usize) -> Request {
    let entities: Vec<_> = (0..entities)
        .map(|_| json!({"user_id": format!("u{}", rng.random_range(0..DEMO_USERS)), "item_id": format!("i{}", rng.random_range(0..DEMO_ITEMS))}))
        .collect();
    let body = json!({"features": USER_FEATURES, "entities": entities});
    Request {
        path: "/v1/online-features",
        body: Some(body.to_string().into_bytes()),
    }
}

fn push(rng: &mut SmallRng, rows: usize) -> Request {
    let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let rows: Vec<_> = (0..rows)
        .map(|_| {
            let plays = rng.random_range(0..500);
            json!({"user_id": format!("u{}", rng.random_range(0..DEMO_USERS)), "event_timestamp": timestamp,
                   "plays_7d": plays, "skips_7d": plays / 3, "minutes_7d": plays as f64 * 3.5, "favourite_genre": "jazz"})
        })
        .collect();
    Request {
        path: "/v1/push",
        body: Some(
            json!({"view": "user_stats", "rows": rows})
                .to_string()
                .into_bytes(),
        ),
    }
}
