//! Seeded random streams. One ChaCha stream per (seed, purpose), drawn sequentially, so the same
//! seed gives the same noise on any machine and any thread count.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Distinct purposes get distinct streams, so adding draws to one never shifts another.
#[derive(Clone, Copy)]
pub enum Stream {
    NoiseMatrix = 1,
    Flips = 2,
    InstanceRates = 3,
    InstanceProjection = 4,
    InstanceLabels = 5,
}

pub fn stream(seed: u64, purpose: Stream) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(purpose as u64);
    rng
}

/// A uniformly random subset of `k` items of `items`, in random order (partial Fisher–Yates).
pub fn choose<T: Copy>(rng: &mut ChaCha8Rng, items: &[T], k: usize) -> Vec<T> {
    use rand::seq::SliceRandom;
    let mut pool = items.to_vec();
    let (chosen, _) = pool.partial_shuffle(rng, k);
    chosen.to_vec()
}
