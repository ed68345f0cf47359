//! A uniform sample of bounded size from a stream of unknown length
//! (Vitter's algorithm R with a deterministic hash as the random source), so
//! a validation window costs bounded memory however busy the view: the
//! distances are computed on at most `capacity` rows of each window
//! (`DriftConfig::sample_rows`).

pub struct Reservoir<T> {
    capacity: usize,
    seen: u64,
    items: Vec<T>,
}

impl<T> Reservoir<T> {
    pub fn new(capacity: usize) -> Self {
        Reservoir {
            capacity: capacity.max(1),
            seen: 0,
            items: Vec::new(),
        }
    }

    pub fn push(&mut self, item: T) {
        self.seen += 1;
        if self.items.len() < self.capacity {
            self.items.push(item);
            return;
        }
        // Keep the n-th item with probability capacity / n, in a uniformly
        // drawn slot.
        let draw = xxhash_rust::xxh3::xxh3_64(&self.seen.to_le_bytes()) % self.seen;
        if let Some(slot) = self.items.get_mut(draw as usize) {
            *slot = item;
        }
    }

    /// Items offered so far (kept or not).
    pub fn seen(&self) -> u64 {
        self.seen
    }

    pub fn into_items(self) -> Vec<T> {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_under_capacity_and_a_uniform_sample_over_it() {
        let mut small = Reservoir::new(10);
        (0..5).for_each(|i| small.push(i));
        assert_eq!(small.into_items(), vec![0, 1, 2, 3, 4]);

        let mut r = Reservoir::new(1_000);
        (0..100_000u32).for_each(|i| r.push(i));
        assert_eq!(r.seen(), 100_000);
        let items = r.into_items();
        assert_eq!(items.len(), 1_000);
        // Uniform: about a tenth of the sample from each tenth of the stream.
        for decile in 0..10 {
            let n = items.iter().filter(|&&i| i / 10_000 == decile).count();
            assert!((60..=140).contains(&n), "decile {decile}: {n}");
        }
    }
}
