//! `trainer pack`: a dataset's splits into one pack file, resumably. The file grows as
//! `<out>.partial`, samples in split order, each row written after its bytes; run again after
//! a crash or a kill, it checks the rows already there (CRC-32 of their bytes) and goes on
//! from the first that is missing or wrong. At the end the header's checksum is written, every
//! sample is read back and checked, and the file is renamed to `<out>`.

use super::encode::{Encoding, Storage};
use super::layout::{page_align, Header, Layout, Prefix, Row, PREFIX};
use super::Pack;
use crate::data::cores::map_in_order;
use crate::data::files::Files;
use crate::data::image::resize::Resampler;
use crate::data::resident::Entry;
use crate::data::{Format, Source, Split};
use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Rows between two flushes to disk: what a crash can cost at most.
const SYNC_EVERY: usize = 1024;

/// What packing did.
#[derive(Debug, PartialEq, Eq)]
pub struct Packed {
    pub rows: u64,
    /// Rows found complete in a partial pack and kept.
    pub kept: u64,
    pub bytes: u64,
}

/// One sample to pack: where it comes from and what its row says.
struct Planned {
    locator: String,
    label: i64,
    id: u64,
}

/// Packs `source`'s splits into `out`, each sample stored as `storage` says.
pub fn pack(source: &Source, out: &Path, storage: Storage) -> Result<Packed> {
    storage.check()?;
    ensure!(
        matches!(source.format, Format::ImageFolder | Format::Catalog),
        "{} is not made of image files: packs hold ImageFolders and real-world releases",
        source.describe()
    );
    let (header, planned) = plan(source, storage)?;
    let json = serde_json::to_vec(&header)?;
    let names_len: u64 = planned.iter().map(|p| p.locator.len() as u64).sum();
    let layout = Layout::new(json.len() as u64, planned.len() as u64, names_len);
    let partial = partial_path(out);
    let mut file = open_partial(&partial, &json, &planned, layout)?;
    let kept = complete_rows(&mut file, layout, &partial)?;
    if kept > 0 {
        log::info!("{}: resuming after {kept} complete rows", partial.display());
    }
    let files = Files::Folder(source.root.clone());
    write_samples(&mut file, layout, &planned, kept, &(files, storage))?;
    seal(&mut file, layout, json.len())?;
    drop(file);
    verify(&partial)?;
    std::fs::rename(&partial, out)
        .with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir).and_then(|d| d.sync_all()).ok();
    }
    Ok(Packed {
        rows: layout.rows,
        kept,
        bytes: std::fs::metadata(out)?.len(),
    })
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// The header and the samples: the training split, the test split, and the second test set
/// where the dataset has one, each in its order.
fn plan(source: &Source, storage: Storage) -> Result<(Header, Vec<Planned>)> {
    let mut splits = Vec::new();
    let mut planned = Vec::new();
    let mut add = |name: String, entries: Vec<Entry>| {
        let start = planned.len() as u64;
        planned.extend(entries.into_iter().map(|e| Planned {
            locator: e.path.to_string_lossy().into_owned(),
            label: e.label,
            id: e.id,
        }));
        splits.push((name, [start, planned.len() as u64]));
    };
    for split in Split::ALL {
        add(split.as_str().into(), source.image_files(split)?);
    }
    if let Some((name, entries)) = source.also_test_files()? {
        add(name, entries);
    }
    let header = Header {
        dataset: source.name,
        packed_from: source.describe(),
        classes: source.class_names.clone(),
        splits,
        encoding: storage.encoding,
        max_side: storage.max_side,
        quality: (storage.encoding == Encoding::Jpeg).then_some(storage.quality),
    };
    Ok((header, planned))
}

/// The partial pack: an existing one of the same header and samples, or a new one with its
/// header, names and lookup order written and no rows.
fn open_partial(path: &Path, json: &[u8], planned: &[Planned], layout: Layout) -> Result<File> {
    if path.exists() {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut head = vec![0u8; layout.data_start as usize];
        let same = file.read_exact(&mut head).is_ok()
            && Prefix::decode(&head).is_ok_and(|p| p.layout() == layout)
            && head[PREFIX..PREFIX + json.len()] == *json
            && head[layout.names_start as usize..] == names_and_order(planned, layout)[..];
        if same {
            return Ok(file);
        }
        bail!(
            "{} is a partial pack of another dataset, order or encoding; delete it to start over",
            path.display()
        );
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let prefix = Prefix {
        header_len: json.len() as u64,
        rows: layout.rows,
        names_len: layout.names_len,
        sha256: [0; 32],
    };
    file.write_all(&prefix.encode())?;
    file.write_all(json)?;
    file.set_len(layout.data_start)?;
    file.write_all_at(&names_and_order(planned, layout), layout.names_start)?;
    file.sync_all()?;
    Ok(file)
}

/// The names region (locators back to back), padding, and the rows sorted by locator.
fn names_and_order(planned: &[Planned], layout: Layout) -> Vec<u8> {
    let mut bytes: Vec<u8> = planned.iter().flat_map(|p| p.locator.bytes()).collect();
    bytes.resize((layout.order_start - layout.names_start) as usize, 0);
    let mut order: Vec<u32> = (0..planned.len() as u32).collect();
    order.sort_by(|&a, &b| {
        planned[a as usize]
            .locator
            .cmp(&planned[b as usize].locator)
    });
    bytes.extend(order.iter().flat_map(|r| r.to_le_bytes()));
    bytes.resize((layout.data_start - layout.names_start) as usize, 0);
    bytes
}

/// How many rows from the start are written with bytes that match their CRC-32.
fn complete_rows(file: &mut File, layout: Layout, path: &Path) -> Result<u64> {
    let len = file.metadata()?.len();
    for i in 0..layout.rows {
        let mut b = [0u8; super::layout::ROW];
        file.read_exact_at(&mut b, layout.row_at(i) as u64)?;
        let row = Row::decode(&b);
        if !row.written() || row.data_off + row.data_len > len {
            return Ok(i);
        }
        let mut data = vec![0u8; row.data_len as usize];
        file.read_exact_at(&mut data, row.data_off)?;
        if crc32fast::hash(&data) != row.crc {
            log::warn!(
                "{}: row {i} is damaged; packing again from it",
                path.display()
            );
            return Ok(i);
        }
    }
    Ok(layout.rows)
}

/// Rows `from..` with their samples, read on all cores a chunk at a time, written in order.
fn write_samples(
    file: &mut File,
    layout: Layout,
    planned: &[Planned],
    from: u64,
    source: &(Files, Storage),
) -> Result<()> {
    let mut end = match from {
        0 => layout.data_start,
        n => {
            let mut b = [0u8; super::layout::ROW];
            file.read_exact_at(&mut b, layout.row_at(n - 1) as u64)?;
            let last = Row::decode(&b);
            last.data_off + last.data_len
        }
    };
    let names_offsets = name_offsets(planned);
    let mut step = crate::long_step::LongStep::new("packing", planned.len());
    for chunk_start in (from as usize..planned.len()).step_by(SYNC_EVERY) {
        let chunk = &planned[chunk_start..planned.len().min(chunk_start + SYNC_EVERY)];
        for (k, bytes) in read_all(chunk, source)?.into_iter().enumerate() {
            let i = chunk_start + k;
            let data_off = page_align(end);
            file.write_all_at(&bytes, data_off)?;
            let p = &planned[i];
            let row = Row {
                data_off,
                data_len: bytes.len() as u64,
                name_off: names_offsets[i],
                name_len: p.locator.len() as u32,
                crc: crc32fast::hash(&bytes),
                label: p.label,
                id: p.id,
            };
            file.write_all_at(&row.encode(), layout.row_at(i as u64) as u64)?;
            end = data_off + row.data_len;
        }
        file.sync_data()?;
        step.advance(chunk_start + chunk.len())?;
    }
    // The last sample ends on a page too, so a pack's size is whole pages.
    file.set_len(page_align(end))?;
    Ok(())
}

fn name_offsets(planned: &[Planned]) -> Vec<u64> {
    let mut at = 0;
    planned
        .iter()
        .map(|p| {
            let off = at;
            at += p.locator.len() as u64;
            off
        })
        .collect()
}

/// The samples of `chunk` as they are stored, read (and re-encoded) on all cores, in order.
fn read_all(chunk: &[Planned], (files, storage): &(Files, Storage)) -> Result<Vec<Vec<u8>>> {
    let read = |resampler: &mut Resampler, p: &Planned| {
        let bytes = files.read(Path::new(&p.locator))?.into_owned();
        storage
            .store(bytes, resampler)
            .with_context(|| files.describe(Path::new(&p.locator)))
    };
    map_in_order(chunk, "a packing thread panicked", Resampler::default, read)?
        .into_iter()
        .collect()
}

/// Writes the checksum of header, index, names and order into the prefix.
fn seal(file: &mut File, layout: Layout, header_len: usize) -> Result<()> {
    file.sync_all()?;
    let mut region = vec![0u8; layout.data_start as usize - PREFIX];
    file.seek(SeekFrom::Start(PREFIX as u64))?;
    file.read_exact(&mut region)?;
    let prefix = Prefix {
        header_len: header_len as u64,
        rows: layout.rows,
        names_len: layout.names_len,
        sha256: Sha256::digest(&region).into(),
    };
    file.write_all_at(&prefix.encode(), 0)?;
    file.sync_all()?;
    Ok(())
}

/// Opens the written pack as a reader would and checks every sample against its CRC-32.
fn verify(path: &Path) -> Result<()> {
    let pack = Pack::open(path).context("checking the written pack")?;
    for i in 0..pack.rows() {
        pack.bytes(i).context("checking the written pack")?;
    }
    Ok(())
}
