//! Asymmetric (class-pair) noise: for each source class, exactly ⌊noise·n_c⌋ of its samples,
//! chosen uniformly, take the mapped class (`--flips exact`), or each sample independently with
//! probability noise (`--flips bernoulli`, as ELR's CIFAR-100 and IEG's CIFAR-10 code do).
//! - CIFAR-10: truck→automobile, bird→airplane, deer→horse, cat↔dog (Patrini et al.; ELR).
//! - CIFAR-100, `--asym-classes superclasses` (default): each class → the next class of its
//!   super-class, cyclically, with super-classes taken from the dataset's coarse labels (fine
//!   index order within each super-class).
//! - CIFAR-100, `--asym-classes blocks`: each class → the next class of its block of 5
//!   consecutive indices, cyclically (4→0, 9→5, ...), as ELR and Patrini's
//!   `build_for_cifar100` do. These blocks are *not* the super-classes (class 0, apple, is in
//!   super-class 4 with 51, 53, 57 and 83).
//! - Fashion-MNIST (our choice, mirroring CIFAR-10's visually confusable pairs):
//!   T-shirt/top↔Shirt, Pullover→Coat, Sandal→Sneaker, Ankle boot→Sneaker.

use super::decimal::Decimal;
use super::rng::NoiseRng;
use super::variants::{select, AsymClasses, Flips};
use crate::data::DatasetName;
use anyhow::{bail, ensure, Result};

/// Classes per block of ELR's CIFAR-100 map (100 classes = 20 blocks of 5).
const BLOCK: usize = 5;

/// CIFAR-100 fine label → coarse (super-class) label, from the dataset's `coarse_labels`.
const CIFAR100_COARSE: [usize; 100] = [
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11, 6, 11, 5, 10, 7, 6, 13, 15,
    3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5, 5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4,
    2, 0, 17, 4, 18, 17, 10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
];

/// `map[c] = Some(target)` for source classes, `None` for classes that keep their label.
pub fn class_map(
    dataset: DatasetName,
    k: usize,
    classes: AsymClasses,
) -> Result<Vec<Option<usize>>> {
    if classes == AsymClasses::Blocks {
        ensure!(
            (dataset, k) == (DatasetName::Cifar100, 100),
            "--asym-classes blocks is ELR's CIFAR-100 map, but the data is {} with {k} classes: \
             drop it",
            dataset.as_str()
        );
        return Ok(block_map(100, BLOCK));
    }
    let pairs: &[(usize, usize)] = match (dataset, k) {
        (DatasetName::Cifar10, 10) => &[(9, 1), (2, 0), (4, 7), (3, 5), (5, 3)],
        (DatasetName::FashionMnist, 10) => &[(0, 6), (6, 0), (2, 4), (5, 7), (9, 7)],
        (DatasetName::Cifar100, 100) => return Ok(cifar100_map()),
        (DatasetName::Cifar10 | DatasetName::Cifar100 | DatasetName::FashionMnist, _) => bail!(
            "asymmetric noise for {} expects its standard classes, but the data has {k}",
            dataset.as_str()
        ),
        (d, _) => bail!(
            "asymmetric noise has no class map for {}; use --kind matrix or symmetric",
            d.as_str()
        ),
    };
    let mut map = vec![None; k];
    for &(src, dst) in pairs {
        map[src] = Some(dst);
    }
    Ok(map)
}

fn cifar100_map() -> Vec<Option<usize>> {
    (0..100)
        .map(|c| {
            let group: Vec<usize> = (0..100)
                .filter(|&f| CIFAR100_COARSE[f] == CIFAR100_COARSE[c])
                .collect();
            let pos = group
                .iter()
                .position(|&f| f == c)
                .expect("class is in its own group");
            Some(group[(pos + 1) % group.len()])
        })
        .collect()
}

/// Class c → the next class of its block of `block` consecutive indices, cyclically.
fn block_map(k: usize, block: usize) -> Vec<Option<usize>> {
    (0..k)
        .map(|c| Some(c - c % block + (c + 1) % block))
        .collect()
}

pub fn flip(
    labels: &[usize],
    map: &[Option<usize>],
    noise: Decimal,
    flips: Flips,
    rng: &mut NoiseRng,
) -> Vec<usize> {
    let mut noisy = labels.to_vec();
    for (class, target) in map.iter().enumerate() {
        let Some(target) = *target else { continue };
        let members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        for idx in select(rng, &members, noise, flips) {
            noisy[idx] = target;
        }
    }
    noisy
}
