//! The approximate-nearest-neighbour index over item embeddings (usearch
//! HNSW, inner product), built from the embedding vectors held in the store.
//! An index is immutable once built; a new model or new embeddings get a new
//! index, swapped in whole (see `catalog.rs`), so searches never wait for a
//! rebuild.

use ndarray::Array2;
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::error::ActorError;

pub struct AnnIndex {
    index: Index,
    dimensions: usize,
}

/// HNSW search breadth: wider than the number of neighbours asked for keeps
/// recall of the exact top 100 above 95% (tested in `tests/`).
const EXPANSION_SEARCH: usize = 256;

fn ann_error(e: impl std::fmt::Display) -> ActorError {
    ActorError::Index(e.to_string())
}

impl AnnIndex {
    /// Indexes row `i` of `vectors` under key `i`.
    pub fn build(vectors: &Array2<f32>) -> Result<Self, ActorError> {
        let dimensions = vectors.ncols();
        let options = IndexOptions {
            dimensions,
            metric: MetricKind::IP,
            quantization: ScalarKind::F32,
            connectivity: 32,
            expansion_add: 128,
            expansion_search: EXPANSION_SEARCH,
            multi: false,
        };
        let index = Index::new(&options).map_err(ann_error)?;
        index.reserve(vectors.nrows()).map_err(ann_error)?;
        for (i, row) in vectors.rows().into_iter().enumerate() {
            let values = row.to_vec();
            index.add(i as u64, &values).map_err(ann_error)?;
        }
        Ok(AnnIndex { index, dimensions })
    }

    pub fn len(&self) -> usize {
        self.index.size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `count` rows with the largest inner product with `query`, best
    /// first.
    pub fn search(&self, query: &[f32], count: usize) -> Result<Vec<u32>, ActorError> {
        if query.len() != self.dimensions {
            return Err(ActorError::Index(format!(
                "query has {} dimensions, the index {}",
                query.len(),
                self.dimensions
            )));
        }
        let matches = self.index.search(query, count).map_err(ann_error)?;
        Ok(matches.keys.into_iter().map(|k| k as u32).collect())
    }
}
