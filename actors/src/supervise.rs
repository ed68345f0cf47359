//! Supervision of the sync workers (store writers, rankers, retraining): a
//! panic while handling one message fails that message with
//! [`ActorError::Panicked`] (500 `internal`) and the thread keeps serving
//! the next ones; nothing else shares its state mid-update (each message
//! works on its own data, the store's writes are atomic batches).
//!
//! Fault injection, for tests only: `REPRISE_TEST_FAULTS` lists points
//! (`push`, `recommend`, `retrain`) that panic on a marked message (a push
//! to view [`FAULT_MARK`], a recommendation for user [`FAULT_MARK`], every
//! retraining run), and `slow_push`, which holds a push to that view for
//! 3 s.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use crate::error::ActorError;

/// The id that makes an injected fault fire.
pub const FAULT_MARK: &str = "__fault__";

/// Runs `work`, turning a panic into [`ActorError::Panicked`].
pub fn supervised<T, E: From<ActorError>>(
    worker: &'static str,
    work: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            tracing::error!(worker, %message, "a worker panicked on one message; it keeps serving");
            Err(ActorError::Panicked { worker, message }.into())
        }
    }
}

fn faults() -> &'static [String] {
    static FAULTS: OnceLock<Vec<String>> = OnceLock::new();
    FAULTS.get_or_init(|| {
        std::env::var("REPRISE_TEST_FAULTS")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

/// Sleeps `seconds` when fault `point` is switched on and `id` carries the
/// mark (a slow handler, for timeout tests).
pub fn inject_delay(point: &str, id: &str, seconds: u64) {
    if faults().iter().any(|f| f == point) && id == FAULT_MARK {
        std::thread::sleep(std::time::Duration::from_secs(seconds));
    }
}

/// Panics when fault `point` is switched on and `id` carries the mark (or
/// the point fires on every message: `id` is `None`).
pub fn inject(point: &str, id: Option<&str>) {
    if faults().iter().any(|f| f == point) && id.is_none_or(|id| id == FAULT_MARK) {
        panic!("injected fault at {point}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_and_the_thread_lives_on() {
        let result: Result<u32, ActorError> = supervised("test", || panic!("boom"));
        assert!(
            matches!(result, Err(ActorError::Panicked { ref message, .. }) if message == "boom"),
            "{result:?}"
        );
        assert_eq!(supervised("test", || Ok::<_, ActorError>(7)).unwrap(), 7);
    }
}
