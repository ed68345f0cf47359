//! When scheduled runs start: every fixed interval, or at the times of a
//! cron expression (seconds field first, UTC: `0 0 3 * * Sun` = Sundays
//! 03:00).

use std::str::FromStr;
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;

use super::Retrainer;

#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron(Box<cron::Schedule>),
}

impl Schedule {
    /// `7d`, `12h`, `30m` (an interval) or a cron expression with a seconds
    /// field (`0 0 3 * * Sun`); `0` or `never` for no schedule.
    pub fn parse(text: &str) -> Result<Option<Schedule>, String> {
        let text = text.trim();
        if text == "0" || text.eq_ignore_ascii_case("never") {
            return Ok(None);
        }
        if let Some(micros) = reprise_store::time::parse_duration(text) {
            return Ok((micros > 0).then(|| Schedule::Every(Duration::from_micros(micros as u64))));
        }
        cron::Schedule::from_str(text)
            .map(|s| Some(Schedule::Cron(Box::new(s))))
            .map_err(|e| {
                format!("`{text}` is neither a duration (7d, 12h) nor a cron expression (`0 0 3 * * Sun`): {e}")
            })
    }

    /// How long until the next run.
    pub fn next_in(&self) -> Option<Duration> {
        match self {
            Schedule::Every(d) => Some(*d),
            Schedule::Cron(s) => {
                let next = s.upcoming(Utc).next()?;
                Some((next - Utc::now()).to_std().unwrap_or(Duration::ZERO))
            }
        }
    }
}

/// Triggers a run at each time of the schedule.
pub(super) struct RetrainSchedule {
    pub retrainer: Retrainer,
    pub schedule: Schedule,
}

impl RetrainSchedule {
    fn arm(&self, ctx: &mut Context<Self>) {
        let Some(wait) = self.schedule.next_in() else {
            return;
        };
        ctx.run_later(wait, |s, ctx| {
            if let Err(e) = s.retrainer.trigger_automatic("schedule") {
                tracing::warn!(error = %e, "scheduled retraining not started");
            }
            s.arm(ctx);
        });
    }
}

impl Actor for RetrainSchedule {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.arm(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_cron_expressions_and_never_parse() {
        assert!(matches!(
            Schedule::parse("7d").unwrap(),
            Some(Schedule::Every(d)) if d == Duration::from_secs(7 * 86_400)
        ));
        assert!(Schedule::parse("0").unwrap().is_none());
        assert!(Schedule::parse("never").unwrap().is_none());
        let cron = Schedule::parse("0 0 3 * * Sun").unwrap().unwrap();
        let wait = cron.next_in().unwrap();
        assert!(wait <= Duration::from_secs(7 * 86_400), "{wait:?}");
        let every_second = Schedule::parse("* * * * * *").unwrap().unwrap();
        assert!(every_second.next_in().unwrap() <= Duration::from_secs(1));
        let err = Schedule::parse("every tuesday").unwrap_err();
        assert!(err.contains("cron expression"), "{err}");
    }
}
