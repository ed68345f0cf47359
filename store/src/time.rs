//! Timestamps (microseconds since the Unix epoch, UTC) and durations.

use chrono::{DateTime, SecondsFormat, Utc};

/// Microseconds since the Unix epoch.
pub type Micros = i64;

pub const MICROS_PER_SECOND: i64 = 1_000_000;

/// The server clock, in microseconds.
pub fn now_micros() -> Micros {
    Utc::now().timestamp_micros()
}

/// Parses an RFC 3339 timestamp (`2026-01-01T00:00:00Z`).
pub fn parse_rfc3339(text: &str) -> Option<Micros> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_micros())
}

/// Formats as RFC 3339 in UTC, with sub-second digits only when needed.
pub fn format_rfc3339(micros: Micros) -> String {
    match DateTime::<Utc>::from_timestamp_micros(micros) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => micros.to_string(),
    }
}

/// Parses a TTL such as `30d`, `12h`, `15m`, `90s` or `0` (no limit) into
/// microseconds. Returns `None` for anything else.
pub fn parse_duration(text: &str) -> Option<Micros> {
    let text = text.trim();
    if text == "0" {
        return Some(0);
    }
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: i64 = digits.parse().ok().filter(|n| *n >= 0)?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(seconds)?.checked_mul(MICROS_PER_SECOND)
}

/// A duration as [`parse_duration`] reads it: the largest unit that divides
/// it (`30d`, `36h`, `90s`; `0` = none); sub-second parts are rounded up
/// to whole seconds (definitions cannot declare them).
pub fn format_duration(micros: Micros) -> String {
    const UNITS: [(Micros, &str); 3] = [(86_400, "d"), (3_600, "h"), (60, "m")];
    if micros <= 0 {
        return "0".to_owned();
    }
    let seconds = (micros + MICROS_PER_SECOND - 1) / MICROS_PER_SECOND;
    for (size, unit) in UNITS {
        if seconds % size == 0 {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_format_back_to_what_parses() {
        for text in ["0", "30d", "36h", "15m", "90s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
        assert_eq!(format_duration(1_500), "1s");
    }

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("90s"), Some(90 * MICROS_PER_SECOND));
        assert_eq!(parse_duration("15m"), Some(900 * MICROS_PER_SECOND));
        assert_eq!(parse_duration("2h"), Some(7_200 * MICROS_PER_SECOND));
        assert_eq!(parse_duration("30d"), Some(30 * 86_400 * MICROS_PER_SECOND));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("d"), None);
        assert_eq!(parse_duration("-1d"), None);
        assert_eq!(parse_duration("1w"), None);
    }

    #[test]
    fn rfc3339_round_trips() {
        let t = parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(format_rfc3339(t), "2026-01-01T00:00:00Z");
        let t = parse_rfc3339("2026-01-01T01:00:00.250+01:00").unwrap();
        assert_eq!(format_rfc3339(t), "2026-01-01T00:00:00.250Z");
        assert!(parse_rfc3339("yesterday").is_none());
    }
}

/// The store's clock: the system clock, or a manual one for tests and
/// replays. Cloning shares the same clock.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<std::sync::Arc<std::sync::atomic::AtomicI64>>);

impl Clock {
    pub fn system() -> Self {
        Clock(None)
    }

    /// A clock that only moves when [`Clock::set`] is called.
    pub fn manual(start: Micros) -> Self {
        Clock(Some(std::sync::Arc::new(
            std::sync::atomic::AtomicI64::new(start),
        )))
    }

    pub fn now(&self) -> Micros {
        match &self.0 {
            None => now_micros(),
            Some(t) => t.load(std::sync::atomic::Ordering::SeqCst),
        }
    }

    /// Sets a manual clock; no effect on the system clock.
    pub fn set(&self, micros: Micros) {
        if let Some(t) = &self.0 {
            t.store(micros, std::sync::atomic::Ordering::SeqCst);
        }
    }
}
