//! Image files decoded once into the in-memory `N×C×H×W` tensor every dataset becomes: an
//! ImageFolder of JPEG/PNG/WebP files, or a real-world release's catalog (ANIMAL-10N's 64×64
//! JPEGs are the case it is made for). Decoding runs on all cores. Pictures of one size are
//! kept as they are; with [`ImageOptions::size`] each is resized and centre-cropped to it
//! (torchvision's `Resize(S)` + `CenterCrop(S)`), so releases of varying sizes fit one tensor.
//! A file that does not decode stops the load naming it, or with [`BadImages::Skip`] is left
//! out, logged once and counted.

use super::cores::map_in_order;
use super::files::Files;
use super::image::{resize::Resampler, Picture};
use super::{RawSplit, Split};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What to do with a file that does not decode (truncated, not an image, corrupt).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BadImages {
    /// Stop, naming the file.
    #[default]
    Fail,
    /// Leave it out of the split, log its path once and count it.
    Skip,
}

/// How image files become the split's tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageOptions {
    /// Resize the shorter side to this and centre-crop a square of it; unset, every image of a
    /// split must share one size.
    pub size: Option<usize>,
    pub bad: BadImages,
    /// The test split only: resize the shorter side to this before the centre crop of `size`
    /// (unset: `size`).
    pub test_resize: Option<usize>,
}

impl ImageOptions {
    /// From the configuration keys `image_size` and `bad_images` (unset: fail).
    pub fn from_keys(size: Option<usize>, bad: Option<BadImages>) -> Self {
        Self {
            size,
            bad: bad.unwrap_or_default(),
            test_resize: None,
        }
    }

    /// The shorter side the images of `split` are resized to before the centre crop.
    fn resize(&self, split: Split) -> Option<usize> {
        match split {
            Split::Test => self.test_resize.or(self.size),
            Split::Train => self.size,
        }
    }
}

/// One image file to read, with its label and the id it keeps (its place in the official order).
pub(crate) struct Entry {
    pub path: PathBuf,
    pub label: i64,
    pub id: u64,
}

/// Decode `entries` (read from `files`) into `split`.
pub(crate) fn load(
    files: &Files,
    entries: &[Entry],
    opts: ImageOptions,
    split: Split,
) -> Result<RawSplit> {
    let root = files.location();
    ensure!(!entries.is_empty(), "{root}: no images");
    check_memory(entries.len(), opts.size)?;
    let square = opts.size.map(|crop| Square {
        resize: opts.resize(split).unwrap_or(crop),
        crop,
    });
    let decoded = decode_all(files, entries, square)?;
    let mut kept = Vec::with_capacity(entries.len());
    let mut skipped = 0;
    for (entry, picture) in entries.iter().zip(decoded) {
        match (picture, opts.bad) {
            (Ok(p), _) => kept.push((entry, p)),
            (Err(e), BadImages::Fail) => {
                return Err(e.context("pass --bad-images skip to leave such files out"))
            }
            (Err(e), BadImages::Skip) => {
                log::warn!("skipping a bad image: {e:#}");
                skipped += 1;
            }
        }
    }
    if skipped > 0 {
        log::warn!(
            "{root}: skipped {skipped} of {} images that do not decode",
            entries.len()
        );
    }
    ensure!(!kept.is_empty(), "{root}: none of the images decodes");
    assemble(files, &kept, skipped)
}

/// Every picture into channel planes; colour wins (one RGB image makes the split RGB).
fn assemble(files: &Files, kept: &[(&Entry, Planes)], skipped: usize) -> Result<RawSplit> {
    let (first_entry, first) = &kept[0];
    if let Some((entry, p)) = kept
        .iter()
        .find(|(_, p)| (p.height, p.width) != (first.height, first.width))
    {
        bail!(
            "{}: image is {}x{} (width x height), but {} is {}x{}; all images of a split must \
             share one size, or pass --image-size to resize them",
            files.describe(&entry.path),
            p.width,
            p.height,
            files.describe(&first_entry.path),
            first.width,
            first.height
        );
    }
    let channels = kept.iter().map(|(_, p)| p.channels).max().unwrap_or(1);
    let mut pixels = Vec::with_capacity(kept.len() * channels * first.height * first.width);
    for (_, p) in kept {
        p.append_to(&mut pixels, channels);
    }
    Ok(RawSplit {
        pixels,
        shape: [channels, first.height, first.width],
        labels: kept.iter().map(|(e, _)| e.label).collect(),
        ids: Some(kept.iter().map(|(e, _)| e.id).collect()),
        paths: Some(
            kept.iter()
                .map(|(e, _)| e.path.to_string_lossy().into_owned())
                .collect(),
        ),
        skipped,
    })
}

/// Decode on all cores into planes; each result names its file. With `square`, pictures come
/// out RGB and square, so a split of large images never sits in memory at full size.
fn decode_all(
    files: &Files,
    entries: &[Entry],
    square: Option<Square>,
) -> Result<Vec<Result<Planes>>> {
    let decode = |resampler: &mut Resampler, e: &Entry| {
        let picture = files.decode(&e.path)?;
        match square {
            Some(s) => s
                .apply(resampler, picture)
                .with_context(|| format!("{}: resizing", files.describe(&e.path))),
            None => Ok(Planes::of(&picture)),
        }
    };
    let panicked = "an image decoder thread panicked";
    map_in_order(entries, panicked, Resampler::default, decode)
}

/// A decoded image as channel planes (`C×H×W`), the layout the split's tensor keeps.
struct Planes {
    height: usize,
    width: usize,
    channels: usize,
    data: Vec<u8>,
}

impl Planes {
    fn of(picture: &Picture) -> Planes {
        let mut data = Vec::with_capacity(picture.pixels.len());
        picture.append_planes(&mut data, picture.channels);
        Planes {
            height: picture.height,
            width: picture.width,
            channels: picture.channels,
            data,
        }
    }

    /// Appends the planes, a gray one repeated up to `channels`.
    fn append_to(&self, out: &mut Vec<u8>, channels: usize) {
        let plane = self.height * self.width;
        for c in 0..channels {
            let src = if self.channels == 1 { 0 } else { c };
            out.extend_from_slice(&self.data[src * plane..(src + 1) * plane]);
        }
    }
}

/// torchvision's `Resize(resize)` + `CenterCrop(crop)`.
#[derive(Clone, Copy)]
struct Square {
    resize: usize,
    crop: usize,
}

impl Square {
    /// The transform, written straight into RGB planes.
    fn apply(self, resampler: &mut Resampler, picture: Picture) -> Result<Planes> {
        let side = self.crop;
        let mut data = vec![0u8; 3 * side * side];
        resampler.resize_center_crop(&picture.into_rgb(), self.resize, side, &mut data)?;
        Ok(Planes {
            height: side,
            width: side,
            channels: 3,
            data,
        })
    }
}

/// Refuse a resident split that cannot fit: say how much it needs and what to do.
fn check_memory(n: usize, size: Option<usize>) -> Result<()> {
    let (Some(size), Some(available)) = (size, available_memory()) else {
        return Ok(());
    };
    let needed = (n * 3 * size * size) as u64;
    // The tensor plus its assembly buffer, with room for the rest of the process.
    ensure!(
        3 * needed < available,
        "{n} images at {size}x{size} need {:.1} GiB in memory (twice that while loading), \
         more than the {:.1} GiB available; pass a smaller --image-size",
        needed as f64 / GIB,
        available as f64 / GIB
    );
    Ok(())
}

const GIB: f64 = (1u64 << 30) as f64;

/// `MemAvailable` of /proc/meminfo in bytes, where the kernel reports it.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
