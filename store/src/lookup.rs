//! Lookups of event views: when an event is pushed, each declared lookup
//! reads another view's feature as of the event's own time, through the
//! snapshot's point-in-time code path (event cutoff: the attribute valid at
//! the event time, however late it was written; that view's TTL applies),
//! and the value is stored with the event.

use crate::cf::Cf;
use crate::codec;
use crate::error::Result;
use crate::feature_store::FeatureStore;
use crate::push::ParsedRow;
use crate::registry::FeatureView;
use crate::snapshot::{point_in_time, Cutoff};

impl FeatureStore {
    /// Fills the lookup features of `rows` (events of `view`) as of the
    /// current store version.
    pub(crate) fn fill_lookups(&self, view: &FeatureView, rows: &mut [ParsedRow]) -> Result<()> {
        let version = self.version();
        let mut cursor = self.engine.cursor(Cf::History)?;
        for (index, feature) in view.features.iter().enumerate() {
            let Some(lookup) = &feature.lookup else {
                continue;
            };
            for row in rows.iter_mut() {
                let keys: Vec<&str> = lookup
                    .key_positions
                    .iter()
                    .map(|&p| row.keys[p].as_str())
                    .collect();
                let found = point_in_time(
                    cursor.as_mut(),
                    &lookup.view,
                    &codec::entity_key(&keys),
                    row.event_ts,
                    version,
                    Cutoff::Event,
                )?;
                row.values[index] = found
                    .and_then(|stored| lookup.view.compute(&stored).swap_remove(lookup.feature));
            }
        }
        Ok(())
    }
}
