//! Reading rows from files: JSON lines, and any rows read ahead on a
//! thread of their own.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::Value as Json;

/// Rows of a file, or why one could not be read.
pub type Rows<T = Json> = Box<dyn Iterator<Item = Result<T, String>> + Send>;

/// Rows read and parsed on a thread of their own, a few thousand ahead of
/// the caller, so parsing overlaps what the caller does with them. A reader
/// that panicked ends the rows with an error, never a silently short input.
pub fn read_ahead<T: Send + 'static>(rows: Rows<T>) -> impl Iterator<Item = Result<T, String>> {
    const BATCH: usize = 4096;
    let (send, receive) = std::sync::mpsc::sync_channel::<Vec<Result<T, String>>>(2);
    let reader = std::thread::spawn(move || {
        let mut rows = rows.peekable();
        while rows.peek().is_some() {
            // The receiver gone (the caller stopped reading): stop too.
            if send.send(rows.by_ref().take(BATCH).collect()).is_err() {
                return;
            }
        }
    });
    let mut reader = Some(reader);
    receive
        .into_iter()
        .flatten()
        .chain(std::iter::from_fn(move || {
            let panicked = reader.take()?.join().is_err();
            panicked.then(|| Err("reading the rows failed (the reader thread panicked)".to_owned()))
        }))
}

/// Whether `path` is read as CSV (by its extension).
pub fn is_csv(path: &Path) -> bool {
    has_extension(path, "csv")
}

pub fn is_parquet(path: &Path) -> bool {
    has_extension(path, "parquet")
}

fn has_extension(path: &Path, extension: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(extension))
}

/// JSON objects, one per non-blank line.
pub fn json_lines(reader: Box<dyn Read + Send>) -> Rows {
    Box::new(
        BufReader::new(reader)
            .lines()
            .enumerate()
            .filter(|(_, line)| line.as_ref().map_or(true, |l| !l.trim().is_empty()))
            .map(|(i, line)| {
                let line = line.map_err(|e| format!("line {}: {e}", i + 1))?;
                serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", i + 1))
            }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_ahead_keeps_the_order_and_reports_a_reader_that_panicked() {
        let rows: Rows = Box::new((0..10_000).map(|i| Ok(Json::from(i))));
        let read: Vec<Json> = read_ahead(rows).map(Result::unwrap).collect();
        assert_eq!(read, (0..10_000).map(Json::from).collect::<Vec<_>>());

        let panicking: Rows = Box::new((0..10).map(|i| {
            assert!(i < 5, "a parser bug");
            Ok(Json::from(i))
        }));
        let read: Vec<Result<Json, String>> = read_ahead(panicking).collect();
        assert!(read.last().unwrap().is_err(), "{read:?}");
    }
}
