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
}

#[cfg(test)]
mod tests {
    use super::*;

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
