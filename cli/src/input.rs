//! Reading rows from JSONL or CSV files as JSON objects.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::Context;
use serde_json::{Map, Value as Json};

/// Turns one CSV cell (column name, text) into a JSON value.
pub type CellParser = Box<dyn Fn(&str, &str) -> Result<Json, String> + Send>;

pub type Rows = Box<dyn Iterator<Item = Result<Json, String>> + Send>;

/// Rows of `path`: CSV when it ends in `.csv` (cells through `cell`), else
/// JSON lines. `wrap` lets the caller count bytes read (for progress).
pub fn read_rows(
    path: &Path,
    wrap: impl FnOnce(File) -> Box<dyn Read + Send>,
    cell: CellParser,
) -> anyhow::Result<Rows> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = wrap(file);
    if is_csv(path) {
        let mut csv = csv::Reader::from_reader(reader);
        let headers: Vec<String> = csv
            .headers()
            .with_context(|| format!("reading the CSV header of {}", path.display()))?
            .iter()
            .map(str::to_owned)
            .collect();
        Ok(Box::new(csv.into_records().enumerate().map(
            move |(i, record)| {
                let record = record.map_err(|e| format!("CSV record {}: {e}", i + 1))?;
                let mut object = Map::new();
                for (name, text) in headers.iter().zip(record.iter()) {
                    let value = if text.is_empty() {
                        Json::Null
                    } else {
                        cell(name, text)
                            .map_err(|e| format!("line {}: column `{name}`: {e}", i + 2))?
                    };
                    object.insert(name.clone(), value);
                }
                Ok(Json::Object(object))
            },
        )))
    } else {
        Ok(json_lines(reader))
    }
}

/// Rows read and parsed on a thread of their own, a few thousand ahead of
/// the caller, so parsing overlaps what the caller does with them. A reader
/// that panicked ends the rows with an error, never a silently short input.
pub fn read_ahead(rows: Rows) -> impl Iterator<Item = Result<Json, String>> {
    const BATCH: usize = 4096;
    let (send, receive) = std::sync::mpsc::sync_channel::<Vec<Result<Json, String>>>(2);
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
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
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

/// A CSV cell whose type is not declared: a number or boolean when it reads
/// as one, else a string.
pub fn infer_cell(text: &str) -> Json {
    if let Ok(v) = text.parse::<i64>() {
        return Json::from(v);
    }
    if let Ok(v) = text.parse::<f64>() {
        if let Some(n) = serde_json::Number::from_f64(v) {
            return Json::Number(n);
        }
    }
    match text {
        "true" => Json::Bool(true),
        "false" => Json::Bool(false),
        _ => Json::String(text.to_owned()),
    }
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
