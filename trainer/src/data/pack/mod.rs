//! Packs (`trainer pack`): a dataset's image files in one file, read by memory map. One file
//! instead of a million small ones on a cluster file system, cheap to copy to node-local disk.
//! A folder holding one `*.nlspack` file is a dataset like any other: runs read its splits'
//! images from the map ([`crate::data::files::Files`]) into memory or batch by batch
//! (`--stream`), exactly as they would read the files themselves.
//!
//! The header and index are checked against their SHA-256 when the pack opens, each sample
//! against its CRC-32 when it is read. [`write`] packs resumably and verifies what it wrote.

pub mod encode;
pub mod layout;
pub mod write;

use super::resident::Entry;
use super::{Format, Source};
use anyhow::{bail, ensure, Context, Result};
use layout::{Header, Layout, Prefix, Row, PREFIX};
use memmap2::Mmap;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A pack's file name ends so.
pub const EXTENSION: &str = "nlspack";

/// An open pack.
#[derive(Debug)]
pub struct Pack {
    pub path: PathBuf,
    map: Mmap,
    pub header: Header,
    layout: Layout,
}

impl Pack {
    /// Maps the pack at `path` and checks its prefix, header and index.
    pub fn open(path: &Path) -> Result<Pack> {
        let what = || format!("{}", path.display());
        let file = std::fs::File::open(path).with_context(|| format!("opening {}", what()))?;
        // Safety: the map is read-only; a pack is not modified once renamed into place.
        let map = unsafe { Mmap::map(&file) }.with_context(|| format!("mapping {}", what()))?;
        let prefix = Prefix::decode(&map).with_context(what)?;
        let layout = prefix.layout();
        ensure!(
            map.len() as u64 >= layout.data_start,
            "{}: cut short ({} bytes, its index alone ends at {}); copy it again or re-pack",
            what(),
            map.len(),
            layout.data_start
        );
        let digest = Sha256::digest(&map[PREFIX..layout.data_start as usize]);
        ensure!(
            digest.as_slice() == prefix.sha256,
            "{}: the header or index fails its checksum: the pack is damaged; copy it again or \
             re-pack",
            what()
        );
        let json = &map[PREFIX..PREFIX + prefix.header_len as usize];
        let header: Header =
            serde_json::from_slice(json).with_context(|| format!("{}: the header", what()))?;
        Ok(Pack {
            path: path.to_path_buf(),
            map,
            header,
            layout,
        })
    }

    pub fn rows(&self) -> u64 {
        self.layout.rows
    }

    pub fn row(&self, i: u64) -> Row {
        let at = self.layout.row_at(i);
        Row::decode(&self.map[at..at + layout::ROW])
    }

    /// The locator (the path in the release) of `row`.
    pub fn name(&self, row: &Row) -> &str {
        let start = (self.layout.names_start + row.name_off) as usize;
        std::str::from_utf8(&self.map[start..start + row.name_len as usize]).unwrap_or("?")
    }

    /// The row whose locator is `locator`, by binary search of the sorted order.
    pub fn find(&self, locator: &str) -> Option<u64> {
        let order = &self.map[self.layout.order_start as usize..];
        let at = |k: usize| {
            u64::from(u32::from_le_bytes(
                order[4 * k..4 * k + 4].try_into().unwrap(),
            ))
        };
        let (mut lo, mut hi) = (0usize, self.layout.rows as usize);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let row = at(mid);
            match self.name(&self.row(row)).cmp(locator) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(row),
            }
        }
        None
    }

    /// The bytes of sample `i`, checked against their CRC-32.
    pub fn bytes(&self, i: u64) -> Result<&[u8]> {
        let row = self.row(i);
        let end = row.data_off + row.data_len;
        ensure!(
            row.written() && end <= self.map.len() as u64,
            "{}: row {i} ({}) lies outside the file: the pack is damaged; copy it again or re-pack",
            self.path.display(),
            self.name(&row)
        );
        let bytes = &self.map[row.data_off as usize..end as usize];
        ensure!(
            crc32fast::hash(bytes) == row.crc,
            "{}: row {i} ({}) fails its checksum: the pack is damaged; copy it again or re-pack",
            self.path.display(),
            self.name(&row)
        );
        Ok(bytes)
    }

    /// The second test set packed with the splits, if any (mini-WebVision's ImageNet val).
    pub fn also_test(&self) -> Option<&str> {
        (self.header.splits.iter())
            .map(|(name, _)| name.as_str())
            .find(|name| !["train", "test"].contains(name))
    }

    /// The rows of split `name`.
    pub fn split(&self, name: &str) -> Option<std::ops::Range<u64>> {
        (self.header.splits.iter())
            .find(|(n, _)| n == name)
            .map(|(_, [start, end])| *start..*end)
    }

    /// The images of split `name`, as the files they were packed from.
    pub(crate) fn entries(&self, name: &str) -> Result<Vec<Entry>> {
        let Some(rows) = self.split(name) else {
            bail!("{} has no {name} split", self.path.display());
        };
        Ok(rows
            .map(|i| {
                let row = self.row(i);
                Entry {
                    path: PathBuf::from(self.name(&row)),
                    label: row.label,
                    id: row.id,
                }
            })
            .collect())
    }
}

/// The pack in `dir`, when it holds one (more than one is an error).
pub fn find_in(dir: &Path) -> Result<Option<PathBuf>> {
    let mut packs = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == EXTENSION) && path.is_file() {
            packs.push(path);
        }
    }
    packs.sort();
    match packs.len() {
        0 | 1 => Ok(packs.pop()),
        _ => bail!(
            "{} holds several packs ({}); point --data-dir at a folder with one",
            dir.display(),
            packs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The pack at `path` as a dataset.
pub fn source(path: &Path) -> Result<Source> {
    let pack = Pack::open(path)?;
    Ok(Source {
        name: pack.header.dataset,
        format: Format::Pack,
        root: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        num_classes: pack.header.classes.len(),
        class_names: pack.header.classes.clone(),
        images: Default::default(),
        catalog: None,
        pack: Some(Arc::new(pack)),
        shared_dir: None,
    })
}
