//! A [`Cursor`] over entries already in memory, sorted by key: readers
//! written against the engine's cursor (aggregations) run unchanged on rows
//! fetched from elsewhere (a shared online store).

use super::Cursor;

pub struct SliceCursor {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// The current position; `None` before the first or after the last.
    at: Option<usize>,
}

impl SliceCursor {
    /// `entries` must be sorted by key, each key once.
    pub fn new(entries: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        SliceCursor { entries, at: None }
    }
}

impl Cursor for SliceCursor {
    fn seek_for_prev(&mut self, key: &[u8]) {
        let after = self.entries.partition_point(|(k, _)| k.as_slice() <= key);
        self.at = after.checked_sub(1);
    }

    fn seek(&mut self, key: &[u8]) {
        let first = self.entries.partition_point(|(k, _)| k.as_slice() < key);
        self.at = (first < self.entries.len()).then_some(first);
    }

    fn valid(&self) -> bool {
        self.at.is_some()
    }

    fn entry(&self) -> Option<(&[u8], &[u8])> {
        self.at
            .map(|i| (self.entries[i].0.as_slice(), self.entries[i].1.as_slice()))
    }

    fn prev(&mut self) {
        self.at = self.at.and_then(|i| i.checked_sub(1));
    }

    fn next(&mut self) {
        self.at = self.at.map(|i| i + 1).filter(|&i| i < self.entries.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> SliceCursor {
        SliceCursor::new(vec![
            (b"b".to_vec(), b"1".to_vec()),
            (b"d".to_vec(), b"2".to_vec()),
        ])
    }

    #[test]
    fn seeks_and_walks_both_ways() {
        let mut c = cursor();
        c.seek_for_prev(b"c");
        assert_eq!(c.entry().unwrap().0, b"b");
        c.next();
        assert_eq!(c.entry().unwrap().0, b"d");
        c.next();
        assert!(!c.valid());
        c.seek_for_prev(b"a");
        assert!(!c.valid());
        c.seek(b"c");
        assert_eq!(c.entry().unwrap().0, b"d");
        c.prev();
        assert_eq!(c.entry().unwrap().0, b"b");
        c.prev();
        assert!(!c.valid());
        c.seek(b"e");
        assert!(!c.valid());
        c.seek_for_prev(b"d");
        assert_eq!(c.entry().unwrap().1, b"2");
    }
}
