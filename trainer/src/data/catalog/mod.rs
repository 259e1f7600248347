//! Catalogs of the real-world noisy datasets (Clothing1M, WebVision, ANIMAL-10N, Food-101N):
//! their official label files parsed into records (official order, the image's path, the noisy
//! and the clean label where the release gives them) and named splits, without opening an
//! image. [`detect`] recognizes a release by its marker files; `trainer data-info` prints what
//! it holds. [`source`] makes a release a [`Source`] that trains and tests on the splits the
//! source papers use; its images are decoded into memory ([`crate::data::resident`]).

pub mod animal10n;
pub mod clothing1m;
pub mod food101n;
mod lines;
pub mod webvision;

use super::resident::Entry;
use super::{DatasetName, Format, Source, Split};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One image of a catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The image's path relative to the dataset root.
    pub locator: PathBuf,
    /// The label the release gives as (possibly) noisy, and the verified one, where known.
    pub noisy: Option<usize>,
    pub clean: Option<usize>,
    /// Whether a person checked the noisy label right (Food-101N's verification), where known.
    pub verified: Option<bool>,
}

#[derive(Debug)]
pub struct Catalog {
    pub name: &'static str,
    pub root: PathBuf,
    pub classes: Vec<String>,
    /// Every image named by any split, once, in the order first named.
    pub records: Vec<Record>,
    /// Each split's records (indices into `records`) in the release's order.
    pub splits: Vec<(String, Vec<usize>)>,
}

impl Catalog {
    /// The records of split `name`.
    pub fn split(&self, name: &str) -> Option<&[usize]> {
        self.splits
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, ids)| ids.as_slice())
    }

    /// Per class, how many of `ids` carry each label (`clean` or noisy).
    pub fn class_counts(&self, ids: &[usize], clean: bool) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &i in ids {
            let r = &self.records[i];
            if let Some(label) = if clean { r.clean } else { r.noisy } {
                counts[label] += 1;
            }
        }
        counts
    }

    /// Of `ids`, how many have a known right-or-wrong noisy label (both labels given, or a
    /// verification), and how many of those are right.
    pub fn agreement(&self, ids: &[usize]) -> (usize, usize) {
        let right = |r: &Record| match (r.verified, r.noisy, r.clean) {
            (Some(v), _, _) => Some(v),
            (None, Some(n), Some(c)) => Some(n == c),
            _ => None,
        };
        ids.iter()
            .filter_map(|&i| right(&self.records[i]))
            .fold((0, 0), |(known, ok), r| (known + 1, ok + usize::from(r)))
    }
}

/// The catalog whose marker files `root` holds, or None when it holds none of them.
pub fn detect(root: &Path) -> Result<Option<Catalog>> {
    type IsHere = fn(&Path) -> bool;
    type Reader = fn(&Path) -> Result<Catalog>;
    let readers: [(IsHere, Reader); 4] = [
        (clothing1m::is_here, clothing1m::read),
        (webvision::is_here, webvision::read),
        (food101n::is_here, food101n::read),
        (animal10n::is_here, animal10n::read),
    ];
    for (is_here, read) in readers {
        if is_here(root) {
            return read(root).map(Some);
        }
    }
    Ok(None)
}

/// How runs use a release: the dataset it is, how many of its classes, and the splits trained
/// and tested on, as the source papers use it.
struct Protocol {
    dataset: DatasetName,
    classes: usize,
    train: &'static str,
    test: &'static str,
    /// A second test set the references also report (mini-WebVision's ImageNet val).
    also_test: Option<&'static str>,
}

/// How runs use release `c`: as the source papers do, a WebVision release as mini-WebVision
/// unless `whole` (`--dataset webvision`: WebVision 1.0 whole).
fn protocol(c: &Catalog, whole: bool) -> Result<Protocol> {
    if c.name == webvision::NAME && whole {
        return Ok(Protocol {
            dataset: DatasetName::Webvision,
            classes: c.classes.len(),
            train: webvision::WHOLE_TRAIN,
            test: webvision::WHOLE_TEST,
            also_test: Some(webvision::IMAGENET_VAL_SPLIT).filter(|s| c.split(s).is_some()),
        });
    }
    let (dataset, classes, train, test) = match c.name {
        animal10n::NAME => (DatasetName::Animal10n, c.classes.len(), "train", "test"),
        clothing1m::NAME => (
            DatasetName::Clothing1m,
            c.classes.len(),
            "noisy_train",
            "clean_test",
        ),
        webvision::NAME => (
            DatasetName::MiniWebvision,
            webvision::MINI_CLASSES,
            "mini_train",
            "mini_val",
        ),
        food101n::NAME if c.split("test").is_none() => bail!(
            "{}: Food-101N is tested on Food-101's test split, a separate release: unpack \
             food-101.tar.gz inside or beside it (looked for {})",
            c.root.display(),
            food101n::food101_places(&c.root)
        ),
        food101n::NAME => (DatasetName::Food101n, c.classes.len(), "train", "test"),
        other => bail!("no training protocol for {other}"),
    };
    let also_test = match c.name {
        webvision::NAME => Some(webvision::MINI_IMAGENET_VAL).filter(|s| c.split(s).is_some()),
        _ => None,
    };
    Ok(Protocol {
        dataset,
        classes,
        train,
        test,
        also_test,
    })
}

/// The release as a dataset to train on, as the source papers use it.
pub fn source(c: Catalog) -> Result<Source> {
    let p = protocol(&c, false)?;
    Ok(source_as(c, p))
}

/// A WebVision release's source trained whole ([`DatasetName::Webvision`]) rather than as
/// mini-WebVision.
pub fn whole_webvision(source: Source) -> Result<Source> {
    let c = source
        .catalog
        .as_deref()
        .filter(|c| c.name == webvision::NAME)
        .with_context(|| {
            format!(
                "--dataset webvision: {} is no WebVision release",
                source.describe()
            )
        })?;
    let p = protocol(c, true)?;
    Ok(Source {
        name: p.dataset,
        num_classes: p.classes,
        class_names: c.classes[..p.classes].to_vec(),
        ..source
    })
}

fn source_as(c: Catalog, p: Protocol) -> Source {
    Source {
        name: p.dataset,
        format: Format::Catalog,
        root: c.root.clone(),
        num_classes: p.classes,
        class_names: c.classes[..p.classes].to_vec(),
        images: Default::default(),
        catalog: Some(Arc::new(c)),
        pack: None,
        shared_dir: None,
    }
}

/// The images of a split of `source`'s release with their labels: the given (noisy) label
/// for training, the verified one for testing where the release has it.
pub(crate) fn entries(source: &Source, split: Split) -> Result<Vec<Entry>> {
    let c = source
        .catalog
        .as_deref()
        .with_context(|| format!("{} is not a real-world release", source.describe()))?;
    let p = protocol(c, trains_whole(source))?;
    let name = match split {
        Split::Train => p.train,
        Split::Test => p.test,
    };
    split_entries(c, name, split)
}

/// The second test set of `source`'s release, named, where the references report one and the
/// release has it (mini-WebVision's ImageNet val).
pub(crate) fn also_test_entries(source: &Source) -> Result<Option<(String, Vec<Entry>)>> {
    let Some(c) = source.catalog.as_deref() else {
        return Ok(None);
    };
    match protocol(c, trains_whole(source))?.also_test {
        Some(name) => Ok(Some((name.into(), split_entries(c, name, Split::Test)?))),
        None => Ok(None),
    }
}

/// Whether `source` is a release taken whole (WebVision 1.0 rather than mini-WebVision).
fn trains_whole(source: &Source) -> bool {
    source.name == DatasetName::Webvision
}

/// The images of split `name`, labelled for `split`'s use.
fn split_entries(c: &Catalog, name: &str, split: Split) -> Result<Vec<Entry>> {
    let ids = c
        .split(name)
        .with_context(|| format!("{}: the release has no {name} split", c.name))?;
    ids.iter()
        .enumerate()
        .map(|(id, &i)| {
            let r = &c.records[i];
            let label = match split {
                Split::Train => r.noisy.or(r.clean),
                Split::Test => r.clean.or(r.noisy),
            }
            .with_context(|| format!("{}: {} has no label", c.name, r.locator.display()))?;
            Ok(Entry {
                path: r.locator.clone(),
                label: label as i64,
                id: id as u64,
            })
        })
        .collect()
}

/// Builds a catalog: records merged by locator, splits in the order they are named.
struct Builder {
    name: &'static str,
    root: PathBuf,
    classes: Vec<String>,
    records: Vec<Record>,
    index: HashMap<PathBuf, usize>,
    splits: Vec<(String, Vec<usize>)>,
}

impl Builder {
    fn new(name: &'static str, root: &Path, classes: Vec<String>) -> Builder {
        Builder {
            name,
            root: root.to_path_buf(),
            classes,
            records: Vec::new(),
            index: HashMap::new(),
            splits: Vec::new(),
        }
    }

    /// The record of `locator`, created unlabelled the first time.
    fn record(&mut self, locator: impl Into<PathBuf>) -> (usize, &mut Record) {
        let locator = locator.into();
        let next = self.records.len();
        let i = *self.index.entry(locator.clone()).or_insert(next);
        if i == next {
            self.records.push(Record {
                locator,
                noisy: None,
                clean: None,
                verified: None,
            });
        }
        (i, &mut self.records[i])
    }

    fn split(&mut self, name: &str, ids: Vec<usize>) {
        self.splits.push((name.to_string(), ids));
    }

    fn build(self) -> Catalog {
        Catalog {
            name: self.name,
            root: self.root,
            classes: self.classes,
            records: self.records,
            splits: self.splits,
        }
    }
}
