//! Comparing two CSV files with a header, column by column (`reprise
//! drift`): a column is numeric when every non-empty value of both files
//! parses as a number, else categorical; empty cells are missing and left
//! out.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::distances::{categorical, numeric, CategoricalDistances, NumericDistances};

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("{file}: {message}")]
    Read { file: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColumnDistances {
    Numeric(NumericDistances),
    Categorical(CategoricalDistances),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftReport {
    /// Columns present in both files, by name.
    pub columns: BTreeMap<String, ColumnDistances>,
    /// Columns of only one file.
    pub only_in_reference: Vec<String>,
    pub only_in_current: Vec<String>,
}

/// Each column's non-empty cells, by header name.
fn read(path: &Path) -> Result<BTreeMap<String, Vec<String>>, CsvError> {
    let fail = |message: String| CsvError::Read {
        file: path.display().to_string(),
        message,
    };
    let mut reader = csv::Reader::from_path(path).map_err(|e| fail(e.to_string()))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| fail(e.to_string()))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut columns: BTreeMap<String, Vec<String>> =
        headers.iter().map(|h| (h.clone(), Vec::new())).collect();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| fail(format!("row {}: {e}", line + 1)))?;
        for (name, cell) in headers.iter().zip(record.iter()) {
            if !cell.is_empty() {
                columns
                    .get_mut(name)
                    .expect("from the header")
                    .push(cell.to_owned());
            }
        }
    }
    Ok(columns)
}

fn numbers(cells: &[String]) -> Option<Vec<f64>> {
    cells.iter().map(|c| c.trim().parse::<f64>().ok()).collect()
}

/// Distances of every column the two files share.
pub fn compare_csv(reference: &Path, current: &Path) -> Result<DriftReport, CsvError> {
    let (a, b) = (read(reference)?, read(current)?);
    let mut columns = BTreeMap::new();
    for (name, ref_cells) in &a {
        let Some(cur_cells) = b.get(name) else {
            continue;
        };
        let distances = match (numbers(ref_cells), numbers(cur_cells)) {
            (Some(x), Some(y)) => ColumnDistances::Numeric(numeric(&x, &y)),
            _ => ColumnDistances::Categorical(categorical(ref_cells, cur_cells)),
        };
        columns.insert(name.clone(), distances);
    }
    Ok(DriftReport {
        columns,
        only_in_reference: a.keys().filter(|k| !b.contains_key(*k)).cloned().collect(),
        only_in_current: b.keys().filter(|k| !a.contains_key(*k)).cloned().collect(),
    })
}
