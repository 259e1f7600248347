//! Which images each rank trains on at each step: a seeded permutation per epoch, cut into
//! global batches, each cut into equal per-rank slices.
//!
//! The order depends only on (seed, epoch), not on the world size: rank r of W takes rows
//! `[r·B/W, (r+1)·B/W)` of global batch s, so a run on 2 ranks sees the very same global batches
//! as a run on 1, and a resumed run recomputes the order from the epoch number alone.
//! The last incomplete batch of an epoch is dropped, as `drop_last=True` does.

use crate::noise::rng::below;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// Domain tag so this stream never coincides with another module's seeding.
const ORDER_TAG: u64 = 0x4f52_4445_525f_4e4c;

#[derive(Clone, Debug)]
pub struct EpochOrder {
    permutation: Vec<i64>,
    global_batch: usize,
}

impl EpochOrder {
    /// The permutation of `0..n` for `epoch` (Fisher–Yates with Xoshiro256++).
    pub fn new(seed: u64, epoch: u64, n: usize, global_batch: usize) -> EpochOrder {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(
            seed ^ ORDER_TAG ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let mut permutation: Vec<i64> = (0..n as i64).collect();
        for i in (1..n).rev() {
            let j = below(&mut rng, i + 1);
            permutation.swap(i, j);
        }
        EpochOrder {
            permutation,
            global_batch,
        }
    }

    /// An epoch over `ids` in their order (a method's sampler).
    pub fn from_ids(ids: Vec<i64>, global_batch: usize) -> EpochOrder {
        EpochOrder {
            permutation: ids,
            global_batch,
        }
    }

    /// Every sample of the epoch, in order (the last incomplete batch's included).
    pub fn ids(&self) -> &[i64] {
        &self.permutation
    }

    /// Complete global batches in the epoch.
    pub fn steps(&self) -> usize {
        self.permutation.len() / self.global_batch
    }

    /// Sample indices of global batch `step`.
    pub fn global(&self, step: usize) -> &[i64] {
        let start = step * self.global_batch;
        &self.permutation[start..start + self.global_batch]
    }

    /// The part of global batch `step` that `rank` of `world` trains on.
    pub fn slice(&self, step: usize, rank: usize, world: usize) -> &[i64] {
        let local = self.global_batch / world;
        &self.global(step)[rank * local..(rank + 1) * local]
    }

    /// Whether the `count` steps after `step` run past this epoch's end: then
    /// [`steps_ahead`](Self::steps_ahead) needs the next epoch's order.
    pub fn ahead_reaches_next(&self, step: usize, count: usize) -> bool {
        step + 1 + count > self.steps()
    }

    /// The `count` steps after `step`, as `(epochs on, step, its epoch's order)`: past this
    /// epoch's end they run on into the next epoch's first steps when its order `next` is
    /// known (what a stream queues ahead of the step it serves).
    pub fn steps_ahead<'a>(
        &'a self,
        next: Option<&'a EpochOrder>,
        step: usize,
        count: usize,
    ) -> Vec<(usize, usize, &'a EpochOrder)> {
        let later = |s: usize| match s.checked_sub(self.steps()) {
            None => Some((0, s, self)),
            Some(s) => next.filter(|n| s < n.steps()).map(|n| (1, s, n)),
        };
        (step + 1..step + 1 + count).filter_map(later).collect()
    }
}

/// DivideMix's, ELR's and SSR's Clothing1M sampler: each epoch trains on `n` images drawn
/// afresh, at most ⌊n/K⌋ of each (noisy) class — the first of each class in the epoch's
/// permutation, as the references take them from a shuffled list.
#[derive(Clone, Debug)]
pub struct BalancedSubset {
    labels: Vec<i64>,
    classes: usize,
    n: usize,
}

impl BalancedSubset {
    /// `labels` are the training labels (class indices below `classes`).
    pub fn new(labels: Vec<i64>, classes: usize, n: usize) -> Self {
        Self { labels, classes, n }
    }

    fn per_class(&self) -> usize {
        self.n / self.classes.max(1)
    }

    /// Images an epoch trains on: Σ over classes of min(class size, ⌊n/K⌋), the same every
    /// epoch (a class smaller than its share gives all it has).
    pub fn len(&self) -> usize {
        let mut sizes = vec![0usize; self.classes];
        for &l in &self.labels {
            sizes[l as usize] += 1;
        }
        sizes.iter().map(|&s| s.min(self.per_class())).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The epoch's subset, in the order of the epoch's permutation.
    pub fn order(&self, seed: u64, epoch: u64, global_batch: usize) -> EpochOrder {
        let all = EpochOrder::new(seed, epoch, self.labels.len(), global_batch);
        let cap = self.per_class();
        let mut taken = vec![0usize; self.classes];
        let ids = all
            .permutation
            .into_iter()
            .filter(|&i| {
                let k = self.labels[i as usize] as usize;
                let keep = taken[k] < cap;
                taken[k] += usize::from(keep);
                keep
            })
            .collect();
        EpochOrder::from_ids(ids, global_batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Classes of 300, 40 and 100 images, 150 a epoch: shares of 50, so the second class gives
    /// its 40.
    fn subset() -> BalancedSubset {
        let labels = [(0, 300), (1, 40), (2, 100)]
            .iter()
            .flat_map(|&(k, n)| std::iter::repeat_n(k, n))
            .collect();
        BalancedSubset::new(labels, 3, 150)
    }

    #[test]
    fn a_balanced_epoch_takes_each_classs_share_once() {
        let s = subset();
        assert_eq!(s.len(), 50 + 40 + 50);
        let order = s.order(7, 3, 10);
        let mut ids = order.permutation.clone();
        assert_eq!(ids.len(), 140);
        assert_eq!(order.steps(), 14);
        let count = |k: i64| ids.iter().filter(|&&i| s.labels[i as usize] == k).count();
        assert_eq!([count(0), count(1), count(2)], [50, 40, 50]);
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 140, "an image drawn twice");
        assert_ne!(order.permutation, s.order(7, 4, 10).permutation);
        assert_eq!(order.permutation, s.order(7, 3, 10).permutation);
    }

    /// Drawn afresh each epoch, every image of a class larger than its share comes up about
    /// share/size of the epochs: class 0 (50 of 300) over 1200 epochs, 200 times each
    /// (binomial sd 12.9); the bound is five of those.
    #[test]
    fn over_epochs_every_image_of_a_class_is_drawn_alike() {
        let s = subset();
        let mut drawn = vec![0usize; s.labels.len()];
        for epoch in 0..1200 {
            for &i in &s.order(1, epoch, 10).permutation {
                drawn[i as usize] += 1;
            }
        }
        for (i, &d) in drawn.iter().enumerate().take(300) {
            assert!((135..=265).contains(&d), "image {i} drawn {d} times");
        }
        assert!(drawn[300..340].iter().all(|&d| d == 1200));
    }

    #[test]
    fn a_permutation_that_depends_on_seed_and_epoch_only() {
        let a = EpochOrder::new(3, 1, 100, 32);
        let mut sorted = a.permutation.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<i64>>());
        assert_eq!(a.steps(), 3);
        assert_eq!(a.permutation, EpochOrder::new(3, 1, 100, 32).permutation);
        assert_ne!(a.permutation, EpochOrder::new(3, 2, 100, 32).permutation);
        assert_ne!(a.permutation, EpochOrder::new(4, 1, 100, 32).permutation);
    }

    #[test]
    fn rank_slices_tile_the_global_batch() {
        let order = EpochOrder::new(0, 0, 64, 16);
        let joined: Vec<i64> = (0..4).flat_map(|r| order.slice(2, r, 4).to_vec()).collect();
        assert_eq!(joined, order.global(2));
        assert_eq!(order.slice(2, 0, 1), order.global(2));
    }
}
