//! Which op each image gets: torchvision's AutoAugment (CIFAR-10 or ImageNet policy) and
//! RandAugment, drawn per image from the keyed stream.

use super::config::AutoaugmentPolicy;
use super::ops::Op;
use crate::augment::params::unit;
use crate::noise::rng::below;
use rand_xoshiro::Xoshiro256PlusPlus as Rng;

/// One op of an AutoAugment sub-policy: (op, probability, magnitude bin out of 10).
pub type PolicyOp = (Op, f64, Option<i64>);

/// torchvision's `AutoAugmentPolicy.CIFAR10` (`_get_policies`), 25 sub-policies of two ops.
pub const AUTOAUGMENT_CIFAR10: [[PolicyOp; 2]; 25] = {
    use Op::*;
    [
        [(Invert, 0.1, None), (Contrast, 0.2, Some(6))],
        [(Rotate, 0.7, Some(2)), (TranslateX, 0.3, Some(9))],
        [(Sharpness, 0.8, Some(1)), (Sharpness, 0.9, Some(3))],
        [(ShearY, 0.5, Some(8)), (TranslateY, 0.7, Some(9))],
        [(AutoContrast, 0.5, None), (Equalize, 0.9, None)],
        [(ShearY, 0.2, Some(7)), (Posterize, 0.3, Some(7))],
        [(Color, 0.4, Some(3)), (Brightness, 0.6, Some(7))],
        [(Sharpness, 0.3, Some(9)), (Brightness, 0.7, Some(9))],
        [(Equalize, 0.6, None), (Equalize, 0.5, None)],
        [(Contrast, 0.6, Some(7)), (Sharpness, 0.6, Some(5))],
        [(Color, 0.7, Some(7)), (TranslateX, 0.5, Some(8))],
        [(Equalize, 0.3, None), (AutoContrast, 0.4, None)],
        [(TranslateY, 0.4, Some(3)), (Sharpness, 0.2, Some(6))],
        [(Brightness, 0.9, Some(6)), (Color, 0.2, Some(8))],
        [(Solarize, 0.5, Some(2)), (Invert, 0.0, None)],
        [(Equalize, 0.2, None), (AutoContrast, 0.6, None)],
        [(Equalize, 0.2, None), (Equalize, 0.6, None)],
        [(Color, 0.9, Some(9)), (Equalize, 0.6, None)],
        [(AutoContrast, 0.8, None), (Solarize, 0.2, Some(8))],
        [(Brightness, 0.1, Some(3)), (Color, 0.7, Some(0))],
        [(Solarize, 0.4, Some(5)), (AutoContrast, 0.9, None)],
        [(TranslateY, 0.9, Some(9)), (TranslateY, 0.7, Some(9))],
        [(AutoContrast, 0.9, None), (Solarize, 0.8, Some(3))],
        [(Equalize, 0.8, None), (Invert, 0.1, None)],
        [(TranslateY, 0.7, Some(9)), (AutoContrast, 0.9, None)],
    ]
};

/// torchvision's `AutoAugmentPolicy.IMAGENET` (`_get_policies`), 25 sub-policies of two ops.
pub const AUTOAUGMENT_IMAGENET: [[PolicyOp; 2]; 25] = {
    use Op::*;
    [
        [(Posterize, 0.4, Some(8)), (Rotate, 0.6, Some(9))],
        [(Solarize, 0.6, Some(5)), (AutoContrast, 0.6, None)],
        [(Equalize, 0.8, None), (Equalize, 0.6, None)],
        [(Posterize, 0.6, Some(7)), (Posterize, 0.6, Some(6))],
        [(Equalize, 0.4, None), (Solarize, 0.2, Some(4))],
        [(Equalize, 0.4, None), (Rotate, 0.8, Some(8))],
        [(Solarize, 0.6, Some(3)), (Equalize, 0.6, None)],
        [(Posterize, 0.8, Some(5)), (Equalize, 1.0, None)],
        [(Rotate, 0.2, Some(3)), (Solarize, 0.6, Some(8))],
        [(Equalize, 0.6, None), (Posterize, 0.4, Some(6))],
        [(Rotate, 0.8, Some(8)), (Color, 0.4, Some(0))],
        [(Rotate, 0.4, Some(9)), (Equalize, 0.6, None)],
        [(Equalize, 0.0, None), (Equalize, 0.8, None)],
        [(Invert, 0.6, None), (Equalize, 1.0, None)],
        [(Color, 0.6, Some(4)), (Contrast, 1.0, Some(8))],
        [(Rotate, 0.8, Some(8)), (Color, 1.0, Some(2))],
        [(Color, 0.8, Some(8)), (Solarize, 0.8, Some(7))],
        [(Sharpness, 0.4, Some(7)), (Invert, 0.6, None)],
        [(ShearX, 0.6, Some(5)), (Equalize, 1.0, None)],
        [(Color, 0.4, Some(0)), (Equalize, 0.6, None)],
        [(Equalize, 0.4, None), (Solarize, 0.2, Some(4))],
        [(Solarize, 0.6, Some(5)), (AutoContrast, 0.6, None)],
        [(Invert, 0.6, None), (Equalize, 1.0, None)],
        [(Color, 0.6, Some(4)), (Contrast, 1.0, Some(8))],
        [(Equalize, 0.8, None), (Equalize, 0.6, None)],
    ]
};

impl AutoaugmentPolicy {
    /// The policy's sub-policies.
    pub fn table(self) -> &'static [[PolicyOp; 2]; 25] {
        match self {
            AutoaugmentPolicy::Cifar10 => &AUTOAUGMENT_CIFAR10,
            AutoaugmentPolicy::Imagenet => &AUTOAUGMENT_IMAGENET,
        }
    }
}

/// torchvision RandAugment's op space (its `_AUGMENTATION_SPACE`, in order; no Invert).
pub const RANDAUGMENT_OPS: [Op; 14] = {
    use Op::*;
    [
        Identity,
        ShearX,
        ShearY,
        TranslateX,
        TranslateY,
        Rotate,
        Brightness,
        Color,
        Contrast,
        Sharpness,
        Posterize,
        Solarize,
        AutoContrast,
        Equalize,
    ]
};

/// The op and magnitude one image gets in one slot (`Identity` where an op was skipped).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Chosen {
    pub op: Op,
    pub magnitude: f64,
}

/// Size of the image the magnitudes are for (translations scale with it).
#[derive(Clone, Copy, Debug)]
pub struct Side {
    pub height: i64,
    pub width: i64,
}

/// Every op's magnitude bins for one image size, computed once per batch; indexed by `op as
/// usize`, which is the op's place in [`Op::ALL`] (same order as the enum).
pub struct Magnitudes(Vec<Vec<f64>>);

impl Magnitudes {
    pub fn new(bins: i64, side: Side) -> Self {
        Self(
            Op::ALL
                .iter()
                .map(|op| op.magnitudes(bins, side.height, side.width))
                .collect(),
        )
    }

    /// torchvision's draw: the bin's magnitude, negated with probability ½ for signed ops.
    fn draw(&self, rng: &mut Rng, op: Op, bin: Option<i64>) -> f64 {
        // Ops without magnitudes (Identity, AutoContrast, ...) have no bins: 0, as torchvision.
        let Some(&m) = bin.and_then(|b| self.0[op as usize].get(b as usize)) else {
            return 0.0;
        };
        if op.signed() && unit(rng) < 0.5 {
            -m
        } else {
            m
        }
    }
}

/// AutoAugment: a sub-policy of `policy` uniformly, then each of its two ops with its
/// probability and a magnitude from 10 bins.
/// `table` must have 10 bins.
pub fn sample_autoaugment(
    rng: &mut Rng,
    policy: AutoaugmentPolicy,
    table: &Magnitudes,
) -> [Chosen; 2] {
    let subs = policy.table();
    let sub = subs[below(rng, subs.len())];
    sub.map(|(op, p, bin)| {
        if unit(rng) < p {
            let magnitude = table.draw(rng, op, bin);
            Chosen { op, magnitude }
        } else {
            Chosen {
                op: Op::Identity,
                magnitude: 0.0,
            }
        }
    })
}

/// RandAugment: `num_ops` ops uniformly from [`RANDAUGMENT_OPS`], all at bin `magnitude` of
/// `table`.
pub fn sample_randaugment(
    rng: &mut Rng,
    table: &Magnitudes,
    num_ops: usize,
    bin: i64,
) -> Vec<Chosen> {
    (0..num_ops)
        .map(|_| {
            let op = RANDAUGMENT_OPS[below(rng, RANDAUGMENT_OPS.len())];
            let magnitude = table.draw(rng, op, Some(bin));
            Chosen { op, magnitude }
        })
        .collect()
}
