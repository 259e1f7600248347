//! A training split read from its image files batch by batch (`--stream`), so that it never sits
//! in memory: each batch's files are decoded on worker threads and cut by torchvision's
//! `RandomResizedCrop` + `RandomHorizontalFlip` into a uint8 `N×3×S×S` batch; the colour
//! augmentations and normalization stay batched on the device. Every sample's crop and flip come
//! from its own keyed stream ([`ViewKey::sample_rng`] by its position in the global batch), so
//! batches do not depend on the number of workers or ranks, and a resumed run sees the same.
//! [`Streamed::prefetch`] decodes the next batch on a background thread while the device works
//! on this one; a batch asked for is taken from it when it is the one prefetched.

use super::image::{self, resize::Crop, resize::Resampler};
use super::resident::BadImages;
use crate::augment::{sample_crop, unit, AugmentConfig, ViewKey};
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
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

/// A batch decoding in the background.
struct Pending {
    request: Request,
    job: JoinHandle<Result<Vec<u8>>>,
}

/// The files of a streamed split and how a training view is cut from each.
struct Cutter {
    root: PathBuf,
    /// Per sample, the file's path under `root`.
    paths: Vec<String>,
    size: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    flip_p: f64,
    bad: BadImages,
    workers: usize,
    /// Samples whose file did not decode, each logged once and counted in `bad_count`.
    bad_seen: Mutex<BTreeSet<usize>>,
    bad_count: Arc<AtomicUsize>,
}

impl Streamed {
    /// The split's files (`paths` under `root`) cut as `view` says (its size, crop scale and
    /// ratio, flip probability), on one worker per core. With `BadImages::Skip`, `bad_count`
    /// counts the samples whose file does not decode.
    pub fn new(
        root: &Path,
        paths: Vec<String>,
        view: &AugmentConfig,
        bad: BadImages,
        bad_count: Arc<AtomicUsize>,
    ) -> Self {
        let cutter = Cutter {
            root: root.to_path_buf(),
            paths,
            size: view.size as usize,
            scale: view.crop_scale,
            ratio: view.crop_ratio,
            flip_p: view.flip_p,
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
    /// uint8 `[n, 3, S, S]`; the prefetched batch when it is this one.
    pub fn batch(&self, indices: &[i64], key: ViewKey, start: u64) -> Result<Tensor> {
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
        let (n, side) = (indices.len() as i64, self.cutter.size as i64);
        Ok(Tensor::from_slice(&pixels).view([n, 3, side, side]))
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
    fn pixels(&self, indices: &[i64], key: ViewKey, start: u64) -> Result<Vec<u8>> {
        let sample = 3 * self.size * self.size;
        let mut pixels = vec![0u8; indices.len() * sample];
        let chunk = indices.len().div_ceil(self.workers).max(1);
        std::thread::scope(|s| {
            let jobs: Vec<_> = pixels
                .chunks_mut(chunk * sample)
                .zip(indices.chunks(chunk))
                .enumerate()
                .map(|(j, (out, part))| {
                    let first = start + (j * chunk) as u64;
                    s.spawn(move || self.cut_all(part, key, first, out))
                })
                .collect();
            jobs.into_iter()
                .try_for_each(|j| j.join().ok().context("an image worker panicked")?)
        })?;
        Ok(pixels)
    }

    fn cut_all(&self, indices: &[i64], key: ViewKey, first: u64, out: &mut [u8]) -> Result<()> {
        let mut resampler = Resampler::default();
        let sample = 3 * self.size * self.size;
        for (i, (&index, out)) in indices.iter().zip(out.chunks_mut(sample)).enumerate() {
            let mut rng = key.sample_rng(first + i as u64);
            match self.cut(index as usize, &mut rng, &mut resampler, out) {
                Ok(()) => {}
                Err(e) if self.bad == BadImages::Skip => self.note_bad(index as usize, e, out),
                Err(e) => return Err(e.context("pass --bad-images skip to go on without it")),
            }
        }
        Ok(())
    }

    /// One sample: decode, draw the crop and flip as torchvision does, resize.
    fn cut(
        &self,
        index: usize,
        rng: &mut rand_xoshiro::Xoshiro256PlusPlus,
        resampler: &mut Resampler,
        out: &mut [u8],
    ) -> Result<()> {
        let Some(path) = self.paths.get(index) else {
            bail!(
                "sample {index} is outside the split's {} files",
                self.paths.len()
            );
        };
        let path = self.root.join(path);
        let picture = image::read(&path)?.into_rgb();
        let (h, w) = (picture.height as i64, picture.width as i64);
        let [top, left, ch, cw] = sample_crop(rng, h, w, self.scale, self.ratio);
        let flip = unit(rng) < self.flip_p;
        let crop = Crop {
            top: top as usize,
            left: left as usize,
            height: ch as usize,
            width: cw as usize,
        };
        resampler
            .resized_crop(&picture, crop, (self.size, self.size), flip, out)
            .with_context(|| format!("{}: resizing", path.display()))
    }

    /// A file that does not decode trains as a mid-grey image; logged the first time.
    fn note_bad(&self, index: usize, e: anyhow::Error, out: &mut [u8]) {
        out.fill(128);
        if let Ok(mut seen) = self.bad_seen.lock() {
            if seen.insert(index) {
                self.bad_count.fetch_add(1, Ordering::Relaxed);
                log::warn!("a bad image trains as grey: {e:#}");
            }
        }
    }
}
