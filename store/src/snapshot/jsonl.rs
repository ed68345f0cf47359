//! Snapshot rows as JSON lines, columns in the documented order.

use std::io::Write;

use crate::error::Result;
use crate::feature_store::FeatureStore;
use crate::time::format_rfc3339;
use crate::transform::EVENT_TIMESTAMP;

impl FeatureStore {
    /// Streams the snapshot's rows to `out` as JSON lines; returns the count.
    pub fn write_snapshot_jsonl<W: Write>(&self, id: &str, mut out: W) -> Result<u64> {
        let mut count = 0;
        let mut line = Vec::with_capacity(1024);
        self.read_snapshot(id, |meta, rows| {
            for row in rows {
                line.clear();
                line.push(b'{');
                let mut first = true;
                let mut key = |line: &mut Vec<u8>, name: &str| {
                    if !first {
                        line.push(b',');
                    }
                    first = false;
                    serde_json::to_writer(&mut *line, name).expect("writing to a Vec cannot fail");
                    line.push(b':');
                };
                for (name, value) in meta.join_keys.iter().zip(&row.keys) {
                    key(&mut line, name);
                    serde_json::to_writer(&mut line, value).expect("writing to a Vec cannot fail");
                }
                key(&mut line, EVENT_TIMESTAMP);
                serde_json::to_writer(&mut line, &format_rfc3339(row.event_ts))
                    .expect("writing to a Vec cannot fail");
                for (column, value) in meta.passthrough.iter().zip(&row.passthrough) {
                    key(&mut line, &column.name);
                    serde_json::to_writer(&mut line, value).expect("writing to a Vec cannot fail");
                }
                for (feature, value) in meta.features.iter().zip(&row.values) {
                    key(&mut line, &feature.column);
                    match value {
                        Some(v) => serde_json::to_writer(&mut line, v)
                            .expect("writing to a Vec cannot fail"),
                        None => line.extend_from_slice(b"null"),
                    }
                }
                line.extend_from_slice(b"}\n");
                out.write_all(&line)?;
                count += 1;
            }
            Ok(())
        })?;
        out.flush()?;
        Ok(count)
    }
}
