//! Statistics and every distance for 1M rows × 7 columns (5 numeric, 2
//! categorical), reference vs current, timed in process; columns are
//! processed on all cores.
//!
//! ```sh
//! cargo build --release --workspace --all-targets
//! $CARGO_TARGET_DIR/release/examples/stats_scale 1000000
//! ```

use std::time::Instant;

use reprise_validation::distances::{categorical, numeric, sturges_edges};
use reprise_validation::stats::{CategoricalSketch, NumericSketch};

fn column(n: usize, seed: u64, shift: f64) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            u * 100.0 + shift
        })
        .collect()
}

fn labels(n: usize, seed: u64) -> Vec<String> {
    let names = ["mobile", "web", "tv", "tablet"];
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            names[(state >> 60) as usize % 4].to_owned()
        })
        .collect()
}

enum Column {
    Numeric(Vec<f64>, Vec<f64>),
    Categorical(Vec<String>, Vec<String>),
}

/// Sketches of both windows and the distances between them; returns the
/// L-infinity distance.
fn process(column: &Column) -> f64 {
    match column {
        Column::Numeric(a, b) => {
            let edges = sturges_edges(a, b);
            for data in [a, b] {
                let mut sketch = NumericSketch::new(edges.clone());
                for x in data {
                    sketch.add(Some(*x));
                }
                let _ = sketch.quantile(0.5);
            }
            numeric(a, b).linf
        }
        Column::Categorical(a, b) => {
            for data in [a, b] {
                let mut sketch = CategoricalSketch::default();
                for v in data {
                    sketch.add(Some(v), v.len());
                }
                let _ = sketch.distinct();
            }
            categorical(a, b).linf
        }
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().expect("rows"));
    let mut columns: Vec<Column> = (0..5)
        .map(|c| Column::Numeric(column(n, c, 0.0), column(n, c + 10, 2.0)))
        .collect();
    columns.extend((0..2).map(|c| Column::Categorical(labels(n, c + 20), labels(n, c + 30))));
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());

    let start = Instant::now();
    let linf: f64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let columns = &columns;
                s.spawn(move || {
                    columns
                        .iter()
                        .skip(t)
                        .step_by(threads)
                        .map(process)
                        .sum::<f64>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    println!(
        "{n} rows x 7 columns, reference and current: statistics + distances in {:.3} s on {threads} threads (checksum {linf:.4})",
        start.elapsed().as_secs_f64()
    );
}
