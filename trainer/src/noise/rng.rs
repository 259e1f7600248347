//! Seeded random streams. One stream per (seed, purpose), drawn sequentially, so the same seed
//! gives the same noise on any machine and any thread count. Xoshiro256++ is a fixed, portable
//! algorithm (rand_xoshiro), several times faster than ChaCha for the many small draws here.

use rand::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

pub type NoiseRng = Xoshiro256PlusPlus;

/// Distinct purposes get distinct streams, so adding draws to one never shifts another.
#[derive(Clone, Copy)]
pub enum Stream {
    NoiseMatrix = 1,
    Flips = 2,
    InstanceRates = 3,
    InstanceProjection = 4,
    InstanceLabels = 5,
    /// The evaluation's held-out trusted images (`--holdout-trusted`).
    Holdout = 6,
}

pub fn stream(seed: u64, purpose: Stream) -> NoiseRng {
    NoiseRng::seed_from_u64(splitmix64(seed ^ splitmix64(purpose as u64)))
}

/// SplitMix64's output function: decorrelates nearby seeds before they reach the generator.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in `0..n` (Lemire's multiply-shift; a division only on the rare rejection path,
/// where rand 0.8's `gen_range` divides on every call).
pub fn below(rng: &mut NoiseRng, n: usize) -> usize {
    let n = u32::try_from(n).expect("range fits in u32");
    assert!(n > 0, "empty range");
    let mut m = u64::from(rng.next_u32()) * u64::from(n);
    if (m as u32) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u32) < threshold {
            m = u64::from(rng.next_u32()) * u64::from(n);
        }
    }
    (m >> 32) as usize
}

/// Move a uniformly random ordered subset of `k` items to the front and return it
/// (partial Fisher–Yates).
pub fn partial_shuffle<'a, T>(rng: &mut NoiseRng, items: &'a mut [T], k: usize) -> &'a mut [T] {
    let k = k.min(items.len());
    for i in 0..k {
        let j = i + below(rng, items.len() - i);
        items.swap(i, j);
    }
    &mut items[..k]
}

/// A uniformly random subset of `k` items of `items`, in random order.
pub fn choose<T: Copy>(rng: &mut NoiseRng, items: &[T], k: usize) -> Vec<T> {
    let mut pool = items.to_vec();
    partial_shuffle(rng, &mut pool, k).to_vec()
}
