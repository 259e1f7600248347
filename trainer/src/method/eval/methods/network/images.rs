//! Where a whole-network method's training images come from: the whole split resident on the
//! device, every view made there; or streamed from its files (`--stream`), each view's crop and
//! flip cut by the CPU workers ([`crate::data::stream`]) and the rest of its recipe made on the
//! device ([`Views::after_cut`]). Either way a view of a sample depends only on the step's key
//! and the sample's place in the global batch, never on the number of ranks.

use super::views::{Recipe, Views};
use crate::augment::ViewKey;
use crate::data::files::Files;
use crate::data::resident::BadImages;
use crate::data::stream::{Cut, DecodeScale, Streamed};
use crate::distributed::ProcessGroup;
use crate::model::precision::upload;
use anyhow::{ensure, Context, Result};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use tch::{Device, Tensor};

/// Streamed cuts draw from view keys apart from the device-side views' keys, so that a view's
/// crop and its colours do not share a random stream.
const CUT_VIEWS: u64 = 0x4355_5400_0000_0000;

/// A method's training images.
pub enum TrainImages {
    /// Every image, uint8 RGB `[N, 3, H, W]` on the device.
    Resident(Tensor),
    /// Read from the files as needed.
    Streamed(Arc<StreamedImages>),
}

/// A step's images: as [`TrainImages`], the global batch's raw images, or this rank's rows of
/// each view the method asked for, already cut.
pub enum StepImages {
    Resident(Tensor),
    Cut(Vec<((Recipe, u64), Tensor)>),
}

/// What the streams of a split are made from.
#[derive(Clone)]
pub struct StreamSource {
    pub files: Files,
    /// Per sample, its file; shared by every stream of the split.
    pub paths: Arc<[String]>,
    pub bad: BadImages,
    pub bad_count: Arc<AtomicUsize>,
    pub scale: DecodeScale,
    pub device: Device,
    /// The training geometry (the cut of `Train` and `AutoAugment` views), SimCLR's resized
    /// crop (`Contrastive`), and the test split's transform (`Plain`).
    pub train: Cut,
    pub contrastive: Cut,
    pub plain: Cut,
}

/// A streamed split and its streams, one per list of recipes cut together, each started when
/// first asked for.
pub struct StreamedImages {
    source: StreamSource,
    streams: Mutex<Vec<(Vec<Recipe>, Arc<Streamed>)>>,
}

impl StreamSource {
    fn cut(&self, recipe: Recipe) -> Cut {
        match recipe {
            Recipe::Train | Recipe::AutoAugment => self.train,
            Recipe::Contrastive => self.contrastive,
            Recipe::Plain => self.plain,
        }
    }
}

impl StreamedImages {
    pub fn new(source: StreamSource) -> Self {
        Self {
            source,
            streams: Mutex::new(Vec::new()),
        }
    }

    /// Batches served from a prefetch, over every stream.
    pub fn prefetch_hits(&self) -> usize {
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams.iter().map(|(_, s)| s.prefetch_hits()).sum()
    }

    /// What the streams are made from.
    pub fn source(&self) -> &StreamSource {
        &self.source
    }

    /// The images of `source` as a method reads them.
    pub fn images(source: StreamSource) -> TrainImages {
        TrainImages::Streamed(Arc::new(Self::new(source)))
    }

    /// The stream cutting `recipes` from one decode of each file.
    fn stream(&self, recipes: &[Recipe]) -> Arc<Streamed> {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, s)) = streams.iter().find(|(r, _)| r == recipes) {
            return s.clone();
        }
        let s = &self.source;
        let cuts: Vec<Cut> = recipes.iter().map(|&r| s.cut(r)).collect();
        let mut stream = Streamed::with_views(
            s.files.clone(),
            s.paths.clone(),
            &cuts,
            s.bad,
            s.bad_count.clone(),
        )
        .with_decode_scale(s.scale)
        .for_device(s.device);
        if let Some((_, first)) = streams.first() {
            stream = stream.sharing_bad_files(first);
        }
        let stream = Arc::new(stream);
        streams.push((recipes.to_vec(), stream.clone()));
        stream
    }
}

/// The recipes of `wanted` and the key their cuts are drawn under: view `v` of `wanted` is cut
/// under view `CUT_VIEWS + v`, which needs the views to follow each other.
fn cut_request(key: ViewKey, wanted: &[(Recipe, u64)]) -> Result<(Vec<Recipe>, ViewKey)> {
    let first = wanted
        .first()
        .context("a step asks for at least one view")?
        .1;
    let consecutive = wanted
        .iter()
        .enumerate()
        .all(|(i, w)| w.1 == first + i as u64);
    ensure!(
        consecutive,
        "streamed views must be numbered in turn: {wanted:?}"
    );
    let recipes = wanted.iter().map(|w| w.0).collect();
    Ok((recipes, key.with_view(CUT_VIEWS + first)))
}

impl Clone for TrainImages {
    fn clone(&self) -> Self {
        match self {
            TrainImages::Resident(images) => TrainImages::Resident(images.shallow_clone()),
            TrainImages::Streamed(s) => TrainImages::Streamed(s.clone()),
        }
    }
}

impl TrainImages {
    /// Images in the split.
    pub fn len(&self) -> i64 {
        match self {
            TrainImages::Resident(images) => images.size()[0],
            TrainImages::Streamed(s) => s.source.paths.len() as i64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The images of a step's global batch `ids` (`on_device`: the same ids on the training
    /// device) whose rows `start..start + len` are this rank's, as `wanted` views of `key` will
    /// be made of them. Streamed, the rows are read by the host ids, so the host never waits
    /// for the device to hand them back.
    pub fn step(
        &self,
        (ids, on_device): (&[i64], &Tensor),
        (start, len): (i64, i64),
        key: ViewKey,
        wanted: &[(Recipe, u64)],
    ) -> Result<StepImages> {
        let streamed = match self {
            TrainImages::Resident(images) => {
                return Ok(StepImages::Resident(images.index_select(0, on_device)))
            }
            TrainImages::Streamed(s) => s,
        };
        let local = &ids[start as usize..(start + len) as usize];
        let (recipes, cut_key) = cut_request(key, wanted)?;
        let cuts = streamed
            .stream(&recipes)
            .views(local, cut_key, start as u64)?;
        let device = on_device.device();
        let cuts = (wanted.iter().zip(cuts))
            .map(|(&w, cut)| (w, upload(&cut, device)))
            .collect();
        Ok(StepImages::Cut(cuts))
    }

    /// Queues the cutting of a later [`step`](Self::step)'s rows `local` (its ids `start..`),
    /// when streamed.
    pub fn prefetch(&self, local: &[i64], start: u64, key: ViewKey, wanted: &[(Recipe, u64)]) {
        if let (TrainImages::Streamed(s), Ok((recipes, cut_key))) = (self, cut_request(key, wanted))
        {
            s.stream(&recipes).prefetch(local, cut_key, start);
        }
    }

    /// The view `(recipe, view)` of the images `now.ids` as one batch of its own under
    /// `now.key` (a pass over the split in chunks: SSR's selection); when streamed, the batch
    /// `next` is queued behind it to be cut meanwhile.
    pub fn pass(
        &self,
        now: PassBatch,
        next: Option<PassBatch>,
        (recipe, view): (Recipe, u64),
        views: &Views,
    ) -> Result<Tensor> {
        let n = now.ids.len() as i64;
        let key = now.key.with_view(view);
        let streamed = match self {
            TrainImages::Resident(images) => {
                let ids = Tensor::from_slice(now.ids).to_device(images.device());
                return views.view(&images.index_select(0, &ids), recipe, key, n, 0);
            }
            TrainImages::Streamed(s) => s,
        };
        let wanted = [(recipe, view)];
        let (recipes, cut_key) = cut_request(now.key, &wanted)?;
        let next = match next {
            Some(b) => Some((b.ids, cut_request(b.key, &wanted)?.1, 0)),
            None => None,
        };
        let stream = streamed.stream(&recipes);
        let batch = stream.views_then(now.ids, cut_key, 0, next)?.swap_remove(0);
        let batch = upload(&batch, streamed.source.device);
        views.after_cut(&batch, recipe, key, n, 0)
    }
}

/// One batch of a [`TrainImages::pass`]: its images, in order, and its key.
#[derive(Clone, Copy)]
pub struct PassBatch<'a> {
    pub ids: &'a [i64],
    pub key: ViewKey,
}

/// Where a step's view is read from: the step's rows of one view, and the view's key.
pub struct ViewAt<'a> {
    pub views: &'a Views,
    pub recipe: Recipe,
    pub view: u64,
    pub key: ViewKey,
    pub global_n: i64,
}

impl StepImages {
    /// This rank's rows `start..start + len` of the view.
    pub fn local_view(&self, at: ViewAt, (start, len): (i64, i64)) -> Result<Tensor> {
        let key = at.key.with_view(at.view);
        match self {
            StepImages::Resident(global) => {
                let local = global.narrow(0, start, len);
                at.views.view(&local, at.recipe, key, at.global_n, start)
            }
            StepImages::Cut(_) => {
                let cut = self.cut(at.recipe, at.view)?;
                at.views.after_cut(cut, at.recipe, key, at.global_n, start)
            }
        }
    }

    /// The view of the whole global batch (every rank's rows, gathered when streamed).
    pub fn global_view(&self, at: ViewAt, group: &ProcessGroup) -> Result<Tensor> {
        let key = at.key.with_view(at.view);
        match self {
            StepImages::Resident(global) => at.views.view(global, at.recipe, key, at.global_n, 0),
            StepImages::Cut(_) => {
                let all = group.all_gather(self.cut(at.recipe, at.view)?)?;
                at.views.after_cut(&all, at.recipe, key, at.global_n, 0)
            }
        }
    }

    fn cut(&self, recipe: Recipe, view: u64) -> Result<&Tensor> {
        let StepImages::Cut(cuts) = self else {
            anyhow::bail!("resident images are not cut");
        };
        let found = cuts.iter().find(|(w, _)| *w == (recipe, view));
        found.map(|(_, t)| t).with_context(|| {
            format!("view {view} ({recipe:?}) was not streamed: add it to the method's step_views")
        })
    }
}
