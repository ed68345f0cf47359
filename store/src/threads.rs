//! How many threads the store's parallel work uses.

/// Threads for one parallel job (encoding a backfill, reading and merging a
/// snapshot pass): the cores, at most four.
pub(crate) fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
}
