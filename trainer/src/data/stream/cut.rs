//! How a streamed sample becomes its views: the file read, decoded (a JPEG only over the
//! rectangle its crops need, at the scale [`DecodeScale`] allows) and cut by torchvision's
//! `RandomResizedCrop` (or `Resize` + `RandomCrop`) + `RandomHorizontalFlip`.

use crate::augment::{sample_crop, sample_position, unit, AugmentConfig, ViewKey};
use crate::data::files::Files;
use crate::data::image::jpeg::{self, Region};
use crate::data::image::resize::{centre_offset, shorter_side_to, Crop, Resampler};
use crate::data::image::{self, Picture};
use crate::data::resident::BadImages;
use anyhow::{bail, ensure, Context, Result};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A worker's reusable buffers: its resampler and the last decode's pixels.
#[derive(Default)]
pub(super) struct Scratch {
    pub resampler: Resampler,
    pub decoded: Vec<u8>,
}

/// How one view is cut from a decoded file, as torchvision's transforms would: an optional
/// `Resize(resize)`, the crop, then `RandomHorizontalFlip(flip_p)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cut {
    /// The side of the square the view ends as.
    pub size: usize,
    pub shape: CutShape,
    pub flip_p: f64,
    /// Resize the shorter side to this before the crop (`Resize(256)` + `RandomCrop(224)`).
    pub resize: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CutShape {
    /// `RandomResizedCrop(size, scale, ratio)`.
    ResizedCrop {
        scale: (f64, f64),
        ratio: (f64, f64),
    },
    /// `RandomCrop(size)`, without padding.
    Crop,
    /// `CenterCrop(size)`, never flipped: the evaluation transform (with `resize`).
    Centre,
}

impl Cut {
    /// An SSL view's `RandomResizedCrop` + flip.
    pub fn resized_crop(view: &AugmentConfig) -> Cut {
        Cut {
            size: view.size as usize,
            shape: CutShape::ResizedCrop {
                scale: view.crop_scale,
                ratio: view.crop_ratio,
            },
            flip_p: view.flip_p,
            resize: None,
        }
    }

    /// torchvision's `Resize(resize)` + `CenterCrop(size)`, as the test split is read.
    pub fn centre(size: usize, resize: usize) -> Cut {
        Cut {
            size,
            shape: CutShape::Centre,
            flip_p: 0.0,
            resize: Some(resize),
        }
    }

    /// Bytes of one sample.
    pub(super) fn sample(&self) -> usize {
        3 * self.size * self.size
    }

    /// The size the crop is drawn in for a `height × width` file: after the resize, if any.
    fn drawn_in(&self, height: usize, width: usize) -> (usize, usize) {
        match self.resize {
            Some(side) => shorter_side_to(height, width, side),
            None => (height, width),
        }
    }

    /// The crop and the flip, drawn from `rng` as torchvision draws them for a `height ×
    /// width` picture (the one the crop is cut from: after the resize).
    fn draw(
        &self,
        rng: &mut Xoshiro256PlusPlus,
        (height, width): (usize, usize),
    ) -> Result<(Crop, bool)> {
        let (h, w) = (height as i64, width as i64);
        let [top, left, ch, cw] = match self.shape {
            CutShape::ResizedCrop { scale, ratio } => sample_crop(rng, h, w, scale, ratio),
            CutShape::Crop => {
                let side = self.size as i64;
                ensure!(
                    side <= h && side <= w,
                    "a {side}-pixel crop of a {w}x{h} image: raise --train-resize to at least \
                     {side}"
                );
                let [top, left] = sample_position(rng, h, w, side);
                [top, left, side, side]
            }
            CutShape::Centre => {
                let side = self.size;
                ensure!(
                    side <= height && side <= width,
                    "a {side}-pixel centre crop of a {w}x{h} image: raise --test-resize to at \
                     least {side}"
                );
                let (top, left) = (centre_offset(height, side), centre_offset(width, side));
                [top as i64, left as i64, side as i64, side as i64]
            }
        };
        let flip = self.shape != CutShape::Centre && unit(rng) < self.flip_p;
        let crop = Crop {
            top: top as usize,
            left: left as usize,
            height: ch as usize,
            width: cw as usize,
        };
        Ok((crop, flip))
    }

    /// Draws the crop and the flip from `rng` and cuts the whole RGB `picture`, which is the
    /// file's `full` (height, width) picture or, decoded at a reduced scale, stands for it: the
    /// resize goes to the size the full picture's would have.
    fn apply(
        &self,
        picture: &Picture,
        full: (usize, usize),
        rng: &mut Xoshiro256PlusPlus,
        resampler: &mut Resampler,
        out: &mut [u8],
    ) -> Result<()> {
        let resized_dims = self
            .resize
            .map(|side| shorter_side_to(full.0, full.1, side));
        if let (CutShape::Centre, Some(dims)) = (self.shape, resized_dims) {
            // The resident test split's own path, so both give the same pixels.
            return resampler.resized_center_crop(picture, dims, self.size, out);
        }
        let resized;
        let picture = match resized_dims {
            Some(dims) => {
                resized = resampler.resize(picture, dims)?;
                &resized
            }
            None => picture,
        };
        let (crop, flip) = self.draw(rng, (picture.height, picture.width))?;
        resampler.resized_crop(picture, crop, (self.size, self.size), flip, out)
    }

    /// The coarsest DCT scale `1/denom` at which `crop` still has at least the view's pixels
    /// on each side, so the resize only ever shrinks.
    fn coarsest_denom(&self, crop: Crop) -> usize {
        jpeg::coarsest_denom(|d| crop.height.min(crop.width) / d >= self.size)
    }
}

/// How JPEG files are decoded for the training views: at full scale (the pixels torchvision
/// resizes from), or at the coarsest DCT scale (1/2, 1/4, 1/8) that leaves every view's crop at
/// least its output size, which is faster and differs from full scale by a resampling's
/// rounding.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum DecodeScale {
    #[default]
    Full,
    Reduced,
}

/// The files of a streamed split and how the training views are cut from each.
pub(super) struct Cutter {
    pub files: Files,
    /// Per sample, the file's locator in `files`.
    pub paths: Arc<[String]>,
    pub views: Vec<Cut>,
    pub bad: BadImages,
    pub scale: DecodeScale,
    /// Samples whose file did not decode, each logged once and counted in `bad_count`.
    pub bad_seen: Arc<Mutex<BTreeSet<usize>>>,
    pub bad_count: Arc<AtomicUsize>,
}

impl Cutter {
    /// Sample `index` at position `position` of step `key`'s global batch into `rows` (one
    /// buffer per view); true when it is grey. A file that does not decode is an error, or,
    /// under `--bad-images skip`, a grey sample (the file counted once).
    pub fn cut_sample(
        &self,
        index: usize,
        key: ViewKey,
        position: u64,
        scratch: &mut Scratch,
        rows: &mut [&mut [u8]],
    ) -> Result<bool> {
        match self.cut(index, key, position, scratch, rows) {
            Ok(()) => Ok(false),
            Err(e) if self.bad == BadImages::Skip => {
                self.note_bad(index, e, rows);
                Ok(true)
            }
            Err(e) => Err(e.context("pass --bad-images skip to go on without it")),
        }
    }

    /// One sample, decoded once: per view, the crop and flip drawn as torchvision draws them
    /// from the view's stream, resized into that view's `rows`.
    fn cut(
        &self,
        index: usize,
        key: ViewKey,
        position: u64,
        scratch: &mut Scratch,
        rows: &mut [&mut [u8]],
    ) -> Result<()> {
        let Some(path) = self.paths.get(index) else {
            bail!(
                "sample {index} is outside the split's {} files",
                self.paths.len()
            );
        };
        let path = Path::new(path);
        let rng = |v: usize| key.with_view(key.view + v as u64).sample_rng(position);
        let bytes = self.files.read(path)?;
        let cropped = self.views.iter().all(|cut| cut.resize.is_none()) && image::is_jpeg(&bytes);
        let done = if cropped {
            self.cut_jpeg_region(&bytes, rng, scratch, rows)
        } else {
            self.decode_whole(&bytes).and_then(|(picture, full)| {
                for (v, (cut, out)) in self.views.iter().zip(rows.iter_mut()).enumerate() {
                    cut.apply(&picture, full, &mut rng(v), &mut scratch.resampler, out)?;
                }
                Ok(())
            })
        };
        done.with_context(|| format!("{}: cannot decode and cut", self.files.describe(path)))
    }

    /// The whole file as RGB, and its full-scale (height, width). Under
    /// [`DecodeScale::Reduced`], a JPEG whose every view resizes first is decoded at the
    /// coarsest DCT scale that leaves its shorter side at least the largest resize, so the
    /// resize only ever shrinks.
    fn decode_whole(&self, bytes: &[u8]) -> Result<(Picture, (usize, usize))> {
        // Every view must resize: one that crops the file itself needs its full scale.
        let resizes: Option<Vec<usize>> = self.views.iter().map(|cut| cut.resize).collect();
        let largest_resize = resizes.and_then(|sides| sides.into_iter().max());
        let reduce = self.scale == DecodeScale::Reduced && image::is_jpeg(bytes);
        let (Some(side), true) = (largest_resize, reduce) else {
            let picture = image::decode(bytes)?.into_rgb();
            let full = (picture.height, picture.width);
            return Ok((picture, full));
        };
        let header = jpeg::header(bytes)?;
        let shorter = header.height.min(header.width);
        let denom = jpeg::coarsest_denom(|d| shorter / d >= side);
        let part = jpeg::decode_region(bytes, header, denom, Region::whole(header, denom))?;
        Ok((part.picture.into_rgb(), (header.height, header.width)))
    }

    /// A JPEG decoded only over the rectangle that holds every view's crop, at the scale
    /// [`DecodeScale`] allows: the crops are drawn from the header's size first.
    fn cut_jpeg_region(
        &self,
        bytes: &[u8],
        rng: impl Fn(usize) -> Xoshiro256PlusPlus,
        scratch: &mut Scratch,
        rows: &mut [&mut [u8]],
    ) -> Result<()> {
        let header = jpeg::header(bytes)?;
        let drawn = (self.views.iter().enumerate())
            .map(|(v, cut)| cut.draw(&mut rng(v), cut.drawn_in(header.height, header.width)))
            .collect::<Result<Vec<_>>>()?;
        let denom = match self.scale {
            DecodeScale::Full => 1,
            DecodeScale::Reduced => (self.views.iter().zip(&drawn))
                .map(|(cut, &(crop, _))| cut.coarsest_denom(crop))
                .min()
                .unwrap_or(1),
        };
        let crops: Vec<Crop> = drawn.iter().map(|&(crop, _)| crop).collect();
        let region = bounding_region(&crops, denom, header);
        let buffer = std::mem::take(&mut scratch.decoded);
        let part = jpeg::decode_region_into(bytes, header, denom, region, buffer)?;
        let picture = part.picture.into_rgb();
        let views = self.views.iter().zip(drawn).zip(rows.iter_mut());
        let cut = views.map(|((cut, (crop, flip)), out)| {
            let window = crop.scaled_window(denom, (part.x, part.y));
            (scratch.resampler).resized_crop(&picture, window, (cut.size, cut.size), flip, out)
        });
        let done = cut.collect::<Result<()>>();
        scratch.decoded = picture.pixels;
        done
    }

    /// A file that does not decode trains as a mid-grey image; logged the first time.
    fn note_bad(&self, index: usize, e: anyhow::Error, rows: &mut [&mut [u8]]) {
        rows.iter_mut().for_each(|out| out.fill(128));
        if let Ok(mut seen) = self.bad_seen.lock() {
            if seen.insert(index) {
                self.bad_count.fetch_add(1, Ordering::Relaxed);
                log::warn!("a bad image trains as grey: {e:#}");
            }
        }
    }
}

/// The pixels of the image scaled by `1/denom` that hold every crop (crops at full scale).
fn bounding_region(crops: &[Crop], denom: usize, header: jpeg::Header) -> Region {
    let left = crops.iter().map(|c| c.left).min().unwrap_or(0) / denom;
    let top = crops.iter().map(|c| c.top).min().unwrap_or(0) / denom;
    let right = crops.iter().map(|c| c.left + c.width).max().unwrap_or(0);
    let bottom = crops.iter().map(|c| c.top + c.height).max().unwrap_or(0);
    let right = right.div_ceil(denom).min(jpeg::scaled(header.width, denom));
    let bottom = bottom
        .div_ceil(denom)
        .min(jpeg::scaled(header.height, denom));
    Region {
        x: left,
        y: top,
        width: right - left,
        height: bottom - top,
    }
}
