//! For unit tests: an in-memory store with the server's system views.

use reprise_store::time::{Clock, Micros};
use reprise_store::{FeatureStore, StoreConfig};

/// An in-memory store with the system views registered, on a manual clock
/// at `start`.
pub fn with_system_views(start: Micros) -> (FeatureStore, Clock) {
    let clock = Clock::manual(start);
    let store = FeatureStore::in_memory(StoreConfig {
        clock: clock.clone(),
        ..StoreConfig::default()
    })
    .expect("an in-memory store opens");
    crate::system_views::ensure(&store).expect("the system views register");
    (store, clock)
}
