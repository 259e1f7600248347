//! Per-sample random parameters, drawn on the CPU from a stream keyed by [`ViewKey`].

use super::AugmentConfig;
use crate::model::precision::upload;
use crate::noise::rng::below;
use rand::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tch::{Device, Kind, Tensor};

/// Everything that determines one augmented view's randomness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ViewKey {
    pub seed: u64,
    pub epoch: u64,
    pub step: u64,
    pub rank: u64,
    pub view: u64,
}

impl ViewKey {
    pub fn rng(&self) -> Xoshiro256PlusPlus {
        // Domain tag so this stream never coincides with another module's seeding.
        let mut h = splitmix64(self.seed ^ 0x4155_474D_454E_5421);
        for part in [self.epoch, self.step, self.rank, self.view] {
            h = splitmix64(h ^ splitmix64(part));
        }
        Xoshiro256PlusPlus::seed_from_u64(h)
    }

    pub fn with_view(self, view: u64) -> Self {
        Self { view, ..self }
    }

    /// The stream of one sample, by its position in the global batch: what a sample draws
    /// does not depend on which worker thread or rank handles it.
    pub fn sample_rng(&self, position: u64) -> Xoshiro256PlusPlus {
        let mut h = splitmix64(self.seed ^ 0x5341_4D50_4C45_5321);
        for part in [self.epoch, self.step, self.rank, self.view, position] {
            h = splitmix64(h ^ splitmix64(part));
        }
        Xoshiro256PlusPlus::seed_from_u64(h)
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in `[0, 1)` with 53 random bits.
pub(crate) fn unit(rng: &mut Xoshiro256PlusPlus) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

pub(crate) fn uniform(rng: &mut Xoshiro256PlusPlus, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * unit(rng)
}

/// torchvision's `RandomResizedCrop.get_params`: `(top, left, height, width)` in pixels.
pub fn sample_crop(
    rng: &mut Xoshiro256PlusPlus,
    height: i64,
    width: i64,
    scale: (f64, f64),
    ratio: (f64, f64),
) -> [i64; 4] {
    let area = (height * width) as f64;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * uniform(rng, scale.0, scale.1);
        let aspect = uniform(rng, log_lo, log_hi).exp();
        let w = (target * aspect).sqrt().round() as i64;
        let h = (target / aspect).sqrt().round() as i64;
        if 0 < w && w <= width && 0 < h && h <= height {
            let i = below(rng, (height - h + 1) as usize) as i64;
            let j = below(rng, (width - w + 1) as usize) as i64;
            return [i, j, h, w];
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (h, w) = if in_ratio < ratio.0 {
        ((width as f64 / ratio.0).round() as i64, width)
    } else if in_ratio > ratio.1 {
        (height, (height as f64 * ratio.1).round() as i64)
    } else {
        (height, width)
    };
    [(height - h) / 2, (width - w) / 2, h, w]
}

/// torchvision's `RandomCrop.get_params` without padding: `(top, left)` of a `side × side`
/// crop of a `height × width` image (`side` fits).
pub fn sample_position(
    rng: &mut Xoshiro256PlusPlus,
    height: i64,
    width: i64,
    side: i64,
) -> [i64; 2] {
    let top = below(rng, (height - side + 1) as usize) as i64;
    let left = below(rng, (width - side + 1) as usize) as i64;
    [top, left]
}

/// Per-sample parameters of one view, on the CPU until [`Params::to_device`].
#[derive(Debug)]
pub struct Params {
    /// `[N, 4]` int64: top, left, height, width of the crop.
    pub crop: Tensor,
    /// `[N]` bool: flip horizontally.
    pub flip: Tensor,
    /// `[N]` bool: apply colour jitter.
    pub jitter: Tensor,
    /// `[N, 4]` float: brightness, contrast, saturation factors and hue shift.
    pub jitter_factors: Tensor,
    /// `[N]` bool: convert to grayscale.
    pub gray: Tensor,
    /// `[N]` bool: solarize.
    pub solarize: Tensor,
    /// `[N]` bool: blur, and `[N]` sigmas; drawn only when blur is on, so that the other
    /// parameters of a key stay what they were without it.
    pub blur: Tensor,
    pub blur_sigma: Option<Tensor>,
}

impl Params {
    /// Draw parameters for `n` images of `height × width`; per image, in a fixed order.
    pub fn sample(cfg: &AugmentConfig, n: i64, height: i64, width: i64, key: ViewKey) -> Self {
        let mut rng = key.rng();
        let mut crop = Vec::with_capacity(4 * n as usize);
        let mut flip = Vec::with_capacity(n as usize);
        let mut jitter = Vec::with_capacity(n as usize);
        let mut factors = Vec::with_capacity(4 * n as usize);
        let mut gray = Vec::with_capacity(n as usize);
        let mut solarize = Vec::with_capacity(n as usize);
        let mut blur = Vec::with_capacity(n as usize);
        let mut sigma = Vec::with_capacity(n as usize);
        let j = &cfg.jitter;
        let factor =
            |rng: &mut Xoshiro256PlusPlus, x: f64| uniform(rng, (1.0 - x).max(0.0), 1.0 + x);
        for _ in 0..n {
            crop.extend(sample_crop(
                &mut rng,
                height,
                width,
                cfg.crop_scale,
                cfg.crop_ratio,
            ));
            jitter.push(unit(&mut rng) < cfg.jitter_p);
            factors.push(factor(&mut rng, j.brightness) as f32);
            factors.push(factor(&mut rng, j.contrast) as f32);
            factors.push(factor(&mut rng, j.saturation) as f32);
            factors.push(uniform(&mut rng, -j.hue, j.hue) as f32);
            gray.push(unit(&mut rng) < cfg.gray_p);
            solarize.push(unit(&mut rng) < cfg.solarize_p);
            flip.push(unit(&mut rng) < cfg.flip_p);
            if cfg.blur_p > 0.0 {
                blur.push(unit(&mut rng) < cfg.blur_p);
                sigma.push(uniform(&mut rng, cfg.blur_sigma.0, cfg.blur_sigma.1) as f32);
            } else {
                blur.push(false);
            }
        }
        Self {
            crop: Tensor::from_slice(&crop).view([n, 4]),
            flip: Tensor::from_slice(&flip),
            jitter: Tensor::from_slice(&jitter),
            jitter_factors: Tensor::from_slice(&factors).view([n, 4]),
            gray: Tensor::from_slice(&gray),
            solarize: Tensor::from_slice(&solarize),
            blur: Tensor::from_slice(&blur),
            blur_sigma: (cfg.blur_p > 0.0).then(|| Tensor::from_slice(&sigma)),
        }
    }

    /// Rows `start..start + len`: one rank's part of parameters drawn for the global batch.
    pub fn rows(&self, start: i64, len: i64) -> Self {
        Self {
            crop: self.crop.narrow(0, start, len),
            flip: self.flip.narrow(0, start, len),
            jitter: self.jitter.narrow(0, start, len),
            jitter_factors: self.jitter_factors.narrow(0, start, len),
            gray: self.gray.narrow(0, start, len),
            solarize: self.solarize.narrow(0, start, len),
            blur: self.blur.narrow(0, start, len),
            blur_sigma: self.blur_sigma.as_ref().map(|s| s.narrow(0, start, len)),
        }
    }

    /// On `device`. To a GPU the parameters travel as one packed, pinned upload that does not
    /// block the host (eight separate uploads would each wait for the stream); on the CPU they
    /// stay as they are.
    pub fn to_device(&self, device: Device) -> Self {
        if device == Device::Cpu {
            return self.rows(0, self.flip.size()[0]);
        }
        Self::unpack(&upload(&self.pack(), device), self.blur_sigma.is_some())
    }

    /// `[N, 14]` float: crop (4), flip, jitter, factors (4), gray, solarize, blur, sigma. Crop
    /// corners and sides are integers below 2^24, exact in f32.
    fn pack(&self) -> Tensor {
        let n = self.flip.size()[0];
        let float = |t: &Tensor| t.to_kind(Kind::Float).view([n, -1]);
        let sigma = match &self.blur_sigma {
            Some(s) => float(s),
            None => Tensor::zeros([n, 1], (Kind::Float, Device::Cpu)),
        };
        Tensor::cat(
            &[
                float(&self.crop),
                float(&self.flip),
                float(&self.jitter),
                float(&self.jitter_factors),
                float(&self.gray),
                float(&self.solarize),
                float(&self.blur),
                sigma,
            ],
            1,
        )
    }

    fn unpack(packed: &Tensor, has_sigma: bool) -> Self {
        let column = |i: i64| packed.select(1, i);
        let flag = |i: i64| column(i).to_kind(Kind::Bool);
        Self {
            crop: packed.narrow(1, 0, 4).to_kind(Kind::Int64),
            flip: flag(4),
            jitter: flag(5),
            jitter_factors: packed.narrow(1, 6, 4).contiguous(),
            gray: flag(10),
            solarize: flag(11),
            blur: flag(12),
            blur_sigma: has_sigma.then(|| column(13).contiguous()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The packed upload a GPU gets carries every parameter exactly, with its kind.
    #[test]
    fn the_packed_upload_unpacks_to_the_same_parameters() {
        for blur in [false, true] {
            let mut cfg = AugmentConfig::vicreg();
            cfg.blur_p = if blur { 0.5 } else { 0.0 };
            let key = ViewKey {
                seed: 3,
                epoch: 1,
                step: 7,
                rank: 0,
                view: 1,
            };
            let p = Params::sample(&cfg, 64, 500, 375, key);
            let q = Params::unpack(&p.pack(), p.blur_sigma.is_some());
            let fields = |p: &Params| {
                let mut f = vec![
                    p.crop.shallow_clone(),
                    p.flip.shallow_clone(),
                    p.jitter.shallow_clone(),
                    p.jitter_factors.shallow_clone(),
                    p.gray.shallow_clone(),
                    p.solarize.shallow_clone(),
                    p.blur.shallow_clone(),
                ];
                f.extend(p.blur_sigma.as_ref().map(Tensor::shallow_clone));
                f
            };
            let (a, b) = (fields(&p), fields(&q));
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.kind(), y.kind());
                assert_eq!(x.size(), y.size());
                assert!(x.equal(y), "{x} vs {y}");
            }
            assert!(
                p.crop.max().int64_value(&[]) > 100,
                "crops of a 500×375 image"
            );
        }
    }
}
