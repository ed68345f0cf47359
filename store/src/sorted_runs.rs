//! Sorted runs split across cores by key: cut at the same keys into
//! ranges (one per core), and each range's pieces merged into one sorted
//! run. Snapshot lookups and bulk ingestion both work this way.

use std::borrow::Borrow;

/// Cuts sorted `runs` at the same cut keys into at most `parts` ranges of
/// about equal size: range `i` holds, from every run, the items whose cut
/// key (`cut_key(item)`) lies between pivots `i - 1` and `i`, so items with
/// one cut key never span two ranges. The pivots are the cut keys at even
/// quantiles of the longest run (callers' runs are alike). Each run must be
/// sorted by its cut key too.
pub(crate) fn key_ranges<T, K>(
    runs: &mut [Vec<T>],
    parts: usize,
    cut_key: impl Fn(&T) -> &K,
) -> Vec<Vec<&mut [T]>>
where
    K: Ord + ToOwned + ?Sized,
{
    let pivots: Vec<K::Owned> = match runs.iter().max_by_key(|run| run.len()) {
        Some(run) if !run.is_empty() => (1..parts)
            .map(|i| cut_key(&run[run.len() * i / parts]).to_owned())
            .collect(),
        _ => Vec::new(),
    };
    let mut ranges: Vec<Vec<&mut [T]>> = (0..=pivots.len()).map(|_| Vec::new()).collect();
    for run in runs.iter_mut() {
        let mut rest = run.as_mut_slice();
        for (range, pivot) in ranges.iter_mut().zip(&pivots) {
            let cut = rest.partition_point(|item| cut_key(item) < pivot.borrow());
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(cut);
            range.push(head);
            rest = tail;
        }
        ranges
            .last_mut()
            .expect("a range past the pivots")
            .push(rest);
    }
    ranges
}

/// Sorted `runs` merged in order (ties in run order), each item moved out
/// of its run (left as its default) and handed to `emit`.
pub(crate) fn merge_sorted<T: Ord + Default>(mut runs: Vec<&mut [T]>, mut emit: impl FnMut(T)) {
    let mut next = vec![0usize; runs.len()];
    loop {
        let mut least: Option<usize> = None;
        for (i, run) in runs.iter().enumerate() {
            let Some(head) = run.get(next[i]) else {
                continue;
            };
            if least.is_none_or(|l| *head < runs[l][next[l]]) {
                least = Some(i);
            }
        }
        let Some(i) = least else {
            return;
        };
        emit(std::mem::take(&mut runs[i][next[i]]));
        next[i] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_runs_merge_in_order_ties_in_run_order() {
        let mut runs = [
            vec![(1, 'a'), (4, 'a'), (9, 'a')],
            vec![],
            vec![(1, 'b'), (2, 'b'), (10, 'b')],
            vec![(3, 'c')],
        ];
        let mut merged = Vec::new();
        merge_sorted(runs.iter_mut().map(Vec::as_mut_slice).collect(), |item| {
            merged.push(item)
        });
        assert_eq!(
            merged,
            [
                (1, 'a'),
                (1, 'b'),
                (2, 'b'),
                (3, 'c'),
                (4, 'a'),
                (9, 'a'),
                (10, 'b')
            ]
        );
        assert!(runs.iter().flatten().all(|item| *item == (0, '\0')));
        let mut none = Vec::new();
        merge_sorted(Vec::<&mut [u8]>::new(), |item| none.push(item));
        assert!(none.is_empty());
    }

    #[test]
    fn runs_are_cut_at_the_same_keys_into_ranges() {
        // (cut key, payload): the cut key repeats within a run.
        let mut runs = vec![
            vec![("a", 0), ("b", 1), ("b", 2), ("c", 3)],
            vec![("b", 4), ("d", 5)],
            vec![],
        ];
        let expected = runs.clone();
        let ranges = key_ranges(&mut runs, 2, |(key, _)| key);
        // The pivot is the longest run's middle key, `b`: every `b` lands
        // in the second range, with `c` and `d`.
        let payloads = |range: &Vec<&mut [(&str, u32)]>| -> Vec<Vec<u32>> {
            range
                .iter()
                .map(|slice| slice.iter().map(|(_, p)| *p).collect())
                .collect()
        };
        assert_eq!(ranges.len(), 2);
        assert_eq!(payloads(&ranges[0]), vec![vec![0], vec![], vec![]]);
        assert_eq!(
            payloads(&ranges[1]),
            vec![vec![1, 2, 3], vec![4, 5], vec![]]
        );
        drop(ranges);
        assert_eq!(runs, expected, "cutting moves nothing");
        // One part, or nothing to cut: one range with everything.
        assert_eq!(key_ranges(&mut runs, 1, |(key, _)| key).len(), 1);
        let mut empty: [Vec<(&str, u32)>; 2] = [Vec::new(), Vec::new()];
        assert_eq!(key_ranges(&mut empty, 2, |(key, _)| key).len(), 1);
    }
}
