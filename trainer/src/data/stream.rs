//! A training split read from its image files batch by batch (`--stream`), so that it never sits
//! in memory: each batch's files are decoded on worker threads and cut by torchvision's
//! `RandomResizedCrop` + `RandomHorizontalFlip` into uint8 `N×3×S×S` batches, one per view (the
//! two SSL views are cut from one decode); the colour augmentations and normalization stay
//! batched on the device. Every sample's crop and flip come from its own keyed stream
//! ([`ViewKey::sample_rng`] by its position in the global batch; view `v` under the key's view
//! plus `v`), so batches do not depend on the number of workers or ranks, and a resumed run
//! sees the same.
//! [`Streamed::prefetch`] decodes the next batch on a background thread while the device works
//! on this one; a batch asked for is taken from it when it is the one prefetched.

use super::files::Files;
use super::image::{resize::Crop, resize::Resampler, Picture};
use super::resident::BadImages;
use crate::augment::{sample_crop, sample_position, unit, AugmentConfig, ViewKey};
use anyhow::{bail, ensure, Context, Result};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tch::Tensor;

/// A streamed split: its files, and the next batch being decoded ahead.
pub struct Streamed {
    cutter: Arc<Cutter>,
    pending: Mutex<Option<Pending>>,
    /// Batches served from a prefetch.
    hits: AtomicUsize,
}

/// What a batch is: its samples, its step's key, its offset in the global batch.
type Request = (Vec<i64>, ViewKey, u64);

/// A batch's pixels, one buffer per view (`N×3×S×S` each).
type Pixels = Vec<Vec<u8>>;

/// A batch decoding in the background.
struct Pending {
    request: Request,
    job: JoinHandle<Result<Pixels>>,
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

    /// Bytes of one sample.
    fn sample(&self) -> usize {
        3 * self.size * self.size
    }

    /// Draws the crop and the flip from `rng` as torchvision does, and cuts `picture` (RGB).
    fn apply(
        &self,
        picture: &Picture,
        rng: &mut Xoshiro256PlusPlus,
        resampler: &mut Resampler,
        out: &mut [u8],
    ) -> Result<()> {
        let resized;
        let picture = match self.resize {
            Some(side) => {
                resized = resampler.resize_shorter(picture, side)?;
                &resized
            }
            None => picture,
        };
        let (h, w) = (picture.height as i64, picture.width as i64);
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
        };
        let flip = unit(rng) < self.flip_p;
        let crop = Crop {
            top: top as usize,
            left: left as usize,
            height: ch as usize,
            width: cw as usize,
        };
        resampler.resized_crop(picture, crop, (self.size, self.size), flip, out)
    }
}

/// The files of a streamed split and how the training views are cut from each.
struct Cutter {
    files: Files,
    /// Per sample, the file's locator in `files`.
    paths: Vec<String>,
    views: Vec<Cut>,
    bad: BadImages,
    workers: usize,
    /// Samples whose file did not decode, each logged once and counted in `bad_count`.
    bad_seen: Mutex<BTreeSet<usize>>,
    bad_count: Arc<AtomicUsize>,
}

impl Streamed {
    /// The split's files (`paths` in `files`: a folder or a pack) cut as `view` says (its size,
    /// crop scale and ratio, flip probability), on one worker per core. With
    /// `BadImages::Skip`, `bad_count` counts the samples whose file does not decode.
    pub fn new(
        files: impl Into<Files>,
        paths: Vec<String>,
        view: &AugmentConfig,
        bad: BadImages,
        bad_count: Arc<AtomicUsize>,
    ) -> Self {
        Self::with_views(files, paths, &[Cut::resized_crop(view)], bad, bad_count)
    }

    /// As [`new`](Self::new), each file cut once per view of `views` ([`views`](Self::views)).
    pub fn with_views(
        files: impl Into<Files>,
        paths: Vec<String>,
        views: &[Cut],
        bad: BadImages,
        bad_count: Arc<AtomicUsize>,
    ) -> Self {
        assert!(!views.is_empty(), "a stream cuts at least one view");
        let cutter = Cutter {
            files: files.into(),
            paths,
            views: views.to_vec(),
            bad,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            bad_seen: Mutex::new(BTreeSet::new()),
            bad_count,
        };
        Self {
            cutter: Arc::new(cutter),
            pending: Mutex::new(None),
            hits: AtomicUsize::new(0),
        }
    }

    /// With `workers` decoding threads (before any batch is asked for).
    pub fn with_workers(mut self, workers: usize) -> Self {
        Arc::get_mut(&mut self.cutter)
            .expect("no batch in flight yet")
            .workers = workers.max(1);
        self
    }

    /// The samples `indices`, at positions `start..` of the global batch of step `key`:
    /// uint8 `[n, 3, S, S]` (the first view); the prefetched batch when it is this one.
    pub fn batch(&self, indices: &[i64], key: ViewKey, start: u64) -> Result<Tensor> {
        Ok(self.views(indices, key, start)?.swap_remove(0))
    }

    /// Every view of the samples `indices` (see [`batch`](Self::batch)), each file decoded once.
    pub fn views(&self, indices: &[i64], key: ViewKey, start: u64) -> Result<Vec<Tensor>> {
        let request = (indices.to_vec(), key, start);
        let ready = match self.take_pending() {
            Some(p) if p.request == request => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(p.job.join().ok().context("the prefetch thread panicked")?)
            }
            // Another batch than the one prefetched (after a resume or an epoch's end): wait
            // for it to stop using the cores, then decode this one.
            Some(stale) => {
                let _ = stale.job.join();
                None
            }
            None => None,
        };
        let pixels = match ready {
            Some(pixels) => pixels?,
            None => self.cutter.pixels(indices, key, start)?,
        };
        let n = indices.len() as i64;
        let tensor = |(pixels, cut): (Vec<u8>, &Cut)| {
            let side = cut.size as i64;
            Tensor::from_slice(&pixels).view([n, 3, side, side])
        };
        Ok(pixels
            .into_iter()
            .zip(&self.cutter.views)
            .map(tensor)
            .collect())
    }

    /// Starts decoding the batch a later [`batch`](Self::batch) call will ask for.
    pub fn prefetch(&self, indices: &[i64], key: ViewKey, start: u64) {
        if let Some(stale) = self.take_pending() {
            let _ = stale.job.join();
        }
        let request = (indices.to_vec(), key, start);
        let (cutter, (indices, ..)) = (self.cutter.clone(), request.clone());
        let job = std::thread::spawn(move || cutter.pixels(&indices, key, start));
        if let Ok(mut pending) = self.pending.lock() {
            *pending = Some(Pending { request, job });
        }
    }

    /// How many batches came from a prefetch.
    pub fn prefetch_hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }

    fn take_pending(&self) -> Option<Pending> {
        self.pending.lock().ok()?.take()
    }
}

impl Drop for Streamed {
    /// Says how much of the decoding overlapped training.
    fn drop(&mut self) {
        if let Some(stale) = self.take_pending() {
            let _ = stale.job.join();
        }
        log::info!(
            "streamed training batches: {} decoded ahead of their step",
            self.prefetch_hits()
        );
    }
}

impl Cutter {
    /// The batch's pixels, its samples split among the workers.
    fn pixels(&self, indices: &[i64], key: ViewKey, start: u64) -> Result<Pixels> {
        let mut pixels: Pixels = (self.views.iter())
            .map(|cut| vec![0u8; indices.len() * cut.sample()])
            .collect();
        let chunk = indices.len().div_ceil(self.workers).max(1);
        // Per worker, its rows of every view's buffer.
        let mut outs: Vec<Vec<&mut [u8]>> = indices.chunks(chunk).map(|_| Vec::new()).collect();
        for (buffer, cut) in pixels.iter_mut().zip(&self.views) {
            for (out, rows) in outs.iter_mut().zip(buffer.chunks_mut(chunk * cut.sample())) {
                out.push(rows);
            }
        }
        std::thread::scope(|s| {
            let jobs: Vec<_> = outs
                .into_iter()
                .zip(indices.chunks(chunk))
                .enumerate()
                .map(|(j, (mut out, part))| {
                    let first = start + (j * chunk) as u64;
                    s.spawn(move || self.cut_all(part, key, first, &mut out))
                })
                .collect();
            jobs.into_iter()
                .try_for_each(|j| j.join().ok().context("an image worker panicked")?)
        })?;
        Ok(pixels)
    }

    /// Samples `indices` (at positions `first..`) into `out`, one buffer of rows per view.
    fn cut_all(
        &self,
        indices: &[i64],
        key: ViewKey,
        first: u64,
        out: &mut [&mut [u8]],
    ) -> Result<()> {
        let mut resampler = Resampler::default();
        for (i, &index) in indices.iter().enumerate() {
            let mut rows: Vec<&mut [u8]> = (out.iter_mut().zip(&self.views))
                .map(|(buffer, cut)| &mut buffer[i * cut.sample()..(i + 1) * cut.sample()])
                .collect();
            let position = first + i as u64;
            match self.cut(index as usize, key, position, &mut resampler, &mut rows) {
                Ok(()) => {}
                Err(e) if self.bad == BadImages::Skip => {
                    self.note_bad(index as usize, e, &mut rows)
                }
                Err(e) => return Err(e.context("pass --bad-images skip to go on without it")),
            }
        }
        Ok(())
    }

    /// One sample, decoded once: per view, the crop and flip drawn as torchvision draws them
    /// from the view's stream, resized into that view's `rows`.
    fn cut(
        &self,
        index: usize,
        key: ViewKey,
        position: u64,
        resampler: &mut Resampler,
        rows: &mut [&mut [u8]],
    ) -> Result<()> {
        let Some(path) = self.paths.get(index) else {
            bail!(
                "sample {index} is outside the split's {} files",
                self.paths.len()
            );
        };
        let path = Path::new(path);
        let picture = self.files.decode(path)?.into_rgb();
        for (v, (cut, out)) in self.views.iter().zip(rows.iter_mut()).enumerate() {
            let mut rng = key.with_view(key.view + v as u64).sample_rng(position);
            cut.apply(&picture, &mut rng, resampler, out)
                .with_context(|| format!("{}: cutting", self.files.describe(path)))?;
        }
        Ok(())
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
