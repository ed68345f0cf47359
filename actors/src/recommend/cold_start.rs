//! The cold-start actor: popular and trending items from play events, as
//! time-decayed counts updated incrementally as events arrive, per segment
//! (country, device) with a global fallback. Users with no history and no
//! embedding get these.
//!
//! Protocol: [`RecordPlay`] (fire and forget) adds one play;
//! [`ColdStartItems`] answers the best items for a segment. Each count
//! decays with its half-life: `popular` uses the long one, `trending` the
//! short one, so an item played a lot lately trends before it is popular.

use std::collections::HashMap;

use actix::prelude::*;
use reprise_store::time::{Micros, MICROS_PER_SECOND};

/// How counts decay.
#[derive(Debug, Clone, Copy)]
pub struct ColdStartConfig {
    pub popular_half_life_seconds: f64,
    pub trending_half_life_seconds: f64,
    /// A segment needs this many (decayed) plays before its own list is
    /// used ahead of the global one.
    pub min_segment_plays: f64,
}

impl Default for ColdStartConfig {
    fn default() -> Self {
        ColdStartConfig {
            popular_half_life_seconds: 7.0 * 86_400.0,
            trending_half_life_seconds: 86_400.0,
            min_segment_plays: 20.0,
        }
    }
}

/// A count that halves every `half_life`, stored as its value at `at`.
#[derive(Debug, Clone, Copy, Default)]
struct Decayed {
    value: f64,
    at: Micros,
}

impl Decayed {
    fn value_at(&self, now: Micros, half_life: f64) -> f64 {
        let dt = (now - self.at) as f64 / MICROS_PER_SECOND as f64;
        self.value * 0.5f64.powf(dt.max(0.0) / half_life)
    }

    fn add(&mut self, now: Micros, half_life: f64) {
        // Events can arrive a little out of order: decay towards the newer time.
        if now >= self.at {
            self.value = self.value_at(now, half_life) + 1.0;
            self.at = now;
        } else {
            self.value +=
                0.5f64.powf((self.at - now) as f64 / MICROS_PER_SECOND as f64 / half_life);
        }
    }
}

#[derive(Default)]
struct Counts {
    popular: HashMap<String, Decayed>,
    trending: HashMap<String, Decayed>,
    total: Decayed,
}

/// Where a cold-start item came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColdSource {
    /// Popular in the request's segment.
    Segment,
    /// Popular everywhere.
    Popular,
    /// Played a lot lately, everywhere.
    Trending,
}

impl ColdSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ColdSource::Segment => "segment",
            ColdSource::Popular => "popular",
            ColdSource::Trending => "trending",
        }
    }
}

/// Segments (country × device) tracked; later ones count globally only.
pub const MAX_SEGMENTS: usize = 1_000;

/// Items tracked per list; past it the weaker half is dropped.
pub const MAX_ITEMS: usize = 100_000;

/// Keeps the stronger half of `map` (by decayed count at `now`; ties broken
/// by item id, so exactly half goes however many values tie).
fn prune(map: &mut HashMap<String, Decayed>, now: Micros, half_life: f64) {
    let mut ranked: Vec<(f64, String)> = map
        .iter()
        .map(|(item, d)| (d.value_at(now, half_life), item.clone()))
        .collect();
    let keep = ranked.len() / 2;
    // Strongest first.
    ranked.select_nth_unstable_by(keep, |a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    for (_, item) in &ranked[keep..] {
        map.remove(item);
    }
}

pub struct ColdStart {
    config: ColdStartConfig,
    global: Counts,
    segments: HashMap<(String, String), Counts>,
}

impl ColdStart {
    pub fn new(config: ColdStartConfig) -> Self {
        ColdStart {
            config,
            global: Counts::default(),
            segments: HashMap::new(),
        }
    }

    /// Adds one play (what [`RecordPlay`] does, callable before the actor
    /// starts).
    pub fn record(&mut self, play: &RecordPlay) {
        let c = self.config;
        let key = (play.country.clone(), play.device.clone());
        // Segments come from request context (any string): past the cap, a
        // new segment's plays count globally only.
        let segment = if self.segments.contains_key(&key) || self.segments.len() < MAX_SEGMENTS {
            Some(self.segments.entry(key).or_default())
        } else {
            None
        };
        for counts in std::iter::once(&mut self.global).chain(segment) {
            counts
                .popular
                .entry(play.item.clone())
                .or_default()
                .add(play.at, c.popular_half_life_seconds);
            counts
                .trending
                .entry(play.item.clone())
                .or_default()
                .add(play.at, c.trending_half_life_seconds);
            counts.total.add(play.at, c.popular_half_life_seconds);
            for (map, half_life) in [
                (&mut counts.popular, c.popular_half_life_seconds),
                (&mut counts.trending, c.trending_half_life_seconds),
            ] {
                if map.len() > MAX_ITEMS {
                    prune(map, play.at, half_life);
                }
            }
        }
    }

    /// Best `k` items at `now`: the segment's popular items if it has seen
    /// enough plays, then global trending and popular ones, each list's
    /// scores divided by its best (so in (0, 1]).
    fn items(&self, q: &ColdStartItems) -> Vec<(String, f64, ColdSource)> {
        let c = self.config;
        let ranked = |m: &HashMap<String, Decayed>, half_life: f64| {
            let mut v: Vec<(String, f64)> = m
                .iter()
                .map(|(i, d)| (i.clone(), d.value_at(q.now, half_life)))
                .collect();
            v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let top = v.first().map_or(1.0, |x| x.1.max(f64::MIN_POSITIVE));
            v.into_iter().map(move |(i, s)| (i, s / top))
        };
        let mut lists: Vec<Box<dyn Iterator<Item = (String, f64)>>> = Vec::new();
        let mut sources = Vec::new();
        if let Some(seg) = self.segments.get(&(q.country.clone(), q.device.clone())) {
            if seg.total.value_at(q.now, c.popular_half_life_seconds) >= c.min_segment_plays {
                lists.push(Box::new(ranked(&seg.popular, c.popular_half_life_seconds)));
                sources.push(ColdSource::Segment);
            }
        }
        lists.push(Box::new(ranked(
            &self.global.trending,
            c.trending_half_life_seconds,
        )));
        sources.push(ColdSource::Trending);
        lists.push(Box::new(ranked(
            &self.global.popular,
            c.popular_half_life_seconds,
        )));
        sources.push(ColdSource::Popular);
        // Interleave the lists, skipping repeats, until k items.
        let mut out: Vec<(String, f64, ColdSource)> = Vec::new();
        let mut exhausted = vec![false; lists.len()];
        while out.len() < q.k && exhausted.iter().any(|e| !e) {
            for (n, list) in lists.iter_mut().enumerate() {
                if out.len() >= q.k {
                    break;
                }
                loop {
                    match list.next() {
                        Some((item, score)) if !out.iter().any(|o| o.0 == item) => {
                            out.push((item, score, sources[n]));
                            break;
                        }
                        Some(_) => continue,
                        None => {
                            exhausted[n] = true;
                            break;
                        }
                    }
                }
            }
        }
        out
    }
}

impl Actor for ColdStart {
    type Context = Context<Self>;
}

/// One play of `item` in a segment at `at`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RecordPlay {
    pub item: String,
    pub country: String,
    pub device: String,
    pub at: Micros,
}

impl Handler<RecordPlay> for ColdStart {
    type Result = ();

    fn handle(&mut self, msg: RecordPlay, _: &mut Self::Context) {
        self.record(&msg);
    }
}

/// The best `k` cold-start items for a segment at `now`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Vec<(String, f64, ColdSource)>")]
pub struct ColdStartItems {
    pub country: String,
    pub device: String,
    pub k: usize,
    pub now: Micros,
}

impl Handler<ColdStartItems> for ColdStart {
    type Result = MessageResult<ColdStartItems>;

    fn handle(&mut self, msg: ColdStartItems, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.items(&msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Micros = 3_600 * MICROS_PER_SECOND;

    fn play(item: &str, country: &str, at: Micros) -> RecordPlay {
        RecordPlay {
            item: item.into(),
            country: country.into(),
            device: "mobile".into(),
            at,
        }
    }

    fn query(country: &str, k: usize, now: Micros) -> ColdStartItems {
        ColdStartItems {
            country: country.into(),
            device: "mobile".into(),
            k,
            now,
        }
    }

    #[test]
    fn segments_and_items_are_bounded() {
        let mut c = ColdStart::new(ColdStartConfig::default());
        for i in 0..MAX_SEGMENTS + 50 {
            c.record(&play("i1", &format!("country-{i}"), 0));
        }
        assert_eq!(c.segments.len(), MAX_SEGMENTS);
        assert!(
            (c.global.total.value_at(0, 1.0) - (MAX_SEGMENTS + 50) as f64).abs() < 1e-6,
            "every play counts globally"
        );
        // A popular item survives pruning; one-off items make room.
        for _ in 0..10 {
            c.record(&play("hit", "SE", 0));
        }
        for i in 0..MAX_ITEMS + 10 {
            c.record(&play(&format!("once-{i}"), "SE", 0));
        }
        let n = c.global.popular.len();
        assert!(n <= MAX_ITEMS + 1 && n > MAX_ITEMS / 2, "{n}");
        assert!(c.global.popular.contains_key("hit"));
    }

    #[test]
    fn counts_halve_every_half_life() {
        let mut d = Decayed::default();
        d.add(0, 10.0);
        d.add(0, 10.0);
        assert!((d.value_at(10 * MICROS_PER_SECOND, 10.0) - 1.0).abs() < 1e-12);
        // An event from before the newest one counts decayed to it.
        d.add(-10 * MICROS_PER_SECOND, 10.0);
        assert!((d.value_at(0, 10.0) - 2.5).abs() < 1e-12);
    }

    #[test]
    fn a_busy_segment_gets_its_own_items_others_the_global_ones() {
        let mut c = ColdStart::new(ColdStartConfig {
            min_segment_plays: 3.0,
            ..ColdStartConfig::default()
        });
        for _ in 0..5 {
            c.record(&play("se-hit", "SE", 0));
        }
        for _ in 0..10 {
            c.record(&play("us-hit", "US", 0));
        }
        let se = c.items(&query("SE", 2, HOUR));
        assert_eq!(se[0].0, "se-hit");
        assert_eq!(se[0].2, ColdSource::Segment);
        let unknown = c.items(&query("JP", 2, HOUR));
        assert_eq!(unknown[0].0, "us-hit", "global fallback");
        assert_ne!(unknown[0].2, ColdSource::Segment);
        assert!(unknown.iter().all(|(_, s, _)| (0.0..=1.0).contains(s)));
        let ids: Vec<&str> = unknown.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(ids, ["us-hit", "se-hit"], "no repeats, k items");
    }

    #[test]
    fn recent_plays_trend_before_old_ones() {
        let mut c = ColdStart::new(ColdStartConfig::default());
        for _ in 0..10 {
            c.record(&play("old", "SE", 0));
        }
        let later = 5 * 86_400 * MICROS_PER_SECOND;
        for _ in 0..4 {
            c.record(&play("new", "SE", later));
        }
        let items = c.items(&query("XX", 2, later));
        let trending = items.iter().find(|i| i.2 == ColdSource::Trending).unwrap();
        assert_eq!(trending.0, "new");
        let popular = items.iter().find(|i| i.2 == ColdSource::Popular).unwrap();
        assert_eq!(
            popular.0, "old",
            "five days is under the popular half-life's reach"
        );
    }
}
