//! The ImageFolder layout the original tools use: `<root>/{train,test}/<class>/<image>.png`.
//! Classes are the sorted folder names of `train/` (torchvision's convention); images are
//! sorted by file name within each class, and that order gives the sample ids.

use super::{DatasetName, Format, RawSplit, Source, Split};
use anyhow::{bail, ensure, Context, Result};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Sorted names of the sub-folders (or, with `files`, the files) of `dir`; hidden entries skipped.
fn sorted_entries(dir: &Path, files: bool) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || entry.path().is_dir() == files {
            continue;
        }
        if files && !name.to_ascii_lowercase().ends_with(".png") {
            bail!(
                "{}: only PNG images are supported in an ImageFolder",
                entry.path().display()
            );
        }
        names.push(name);
    }
    names.sort();
    Ok(names)
}

pub fn detect(dir: &Path) -> Result<Option<Source>> {
    let (train, test) = (dir.join("train"), dir.join("test"));
    if !train.is_dir() || !test.is_dir() {
        return Ok(None);
    }
    let classes = sorted_entries(&train, false)?;
    if classes.is_empty() {
        return Ok(None);
    }
    check_same_classes(dir, &classes, &sorted_entries(&test, false)?)?;
    Ok(Some(Source {
        name: DatasetName::ImageFolder,
        format: Format::ImageFolder,
        root: dir.to_path_buf(),
        num_classes: classes.len(),
        class_names: classes,
    }))
}

/// Labels are indices into the class list, so both splits must have the same classes.
fn check_same_classes(dir: &Path, train: &[String], test: &[String]) -> Result<()> {
    let only = |split: &str, a: &[String], b: &[String]| {
        let extra: Vec<&String> = a.iter().filter(|c| !b.contains(c)).collect();
        (!extra.is_empty()).then(|| format!("only in {split}/: {extra:?}"))
    };
    let differences: Vec<String> = [only("train", train, test), only("test", test, train)]
        .into_iter()
        .flatten()
        .collect();
    ensure!(
        differences.is_empty(),
        "{}: train/ and test/ must have the same class folders; {}",
        dir.display(),
        differences.join(", ")
    );
    Ok(())
}

/// A decoded image, height × width × channels (1 or 3).
struct Decoded {
    path: PathBuf,
    height: usize,
    width: usize,
    channels: usize,
    hwc: Vec<u8>,
}

pub(crate) fn read_split(root: &Path, split: Split, classes: &[String]) -> Result<RawSplit> {
    let mut files = Vec::new();
    let mut labels = Vec::new();
    let mut paths = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let dir = root.join(split.as_str()).join(class);
        for file in sorted_entries(&dir, true)? {
            files.push(dir.join(&file));
            labels.push(label as i64);
            paths.push(format!("{}/{class}/{file}", split.as_str()));
        }
    }
    ensure!(
        !files.is_empty(),
        "{}: no images",
        root.join(split.as_str()).display()
    );
    let images = decode_all(&files)?;
    let [_, h, w] = check_same_size(&images)?;
    // Colour wins: one RGB image makes the split RGB, with gray images replicated.
    let channels = images.iter().map(|im| im.channels).max().unwrap_or(1);
    let mut pixels = Vec::with_capacity(images.len() * channels * h * w);
    for im in &images {
        append_chw(&mut pixels, im, channels);
    }
    Ok(RawSplit {
        pixels,
        shape: [channels, h, w],
        labels,
        paths: Some(paths),
    })
}

/// One tensor needs one size; name the first image that differs from the first one.
fn check_same_size(images: &[Decoded]) -> Result<[usize; 3]> {
    let first = &images[0];
    if let Some(bad) = images
        .iter()
        .find(|im| (im.height, im.width) != (first.height, first.width))
    {
        bail!(
            "{}: image is {}x{} (width x height), but {} is {}x{}; all images of a split must share one size",
            bad.path.display(),
            bad.width,
            bad.height,
            first.path.display(),
            first.width,
            first.height
        );
    }
    Ok([first.channels, first.height, first.width])
}

/// Decode on all cores: PNG inflate dominates the load time of a large folder.
fn decode_all(files: &[PathBuf]) -> Result<Vec<Decoded>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = files.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|f| decode(f)).collect::<Result<Vec<_>>>()))
            .collect();
        let mut out = Vec::with_capacity(files.len());
        for h in handles {
            out.extend(h.join().expect("PNG decoder thread panicked")?);
        }
        Ok(out)
    })
}

/// Append as channel planes; gray images are repeated when the split is in colour.
fn append_chw(out: &mut Vec<u8>, im: &Decoded, channels: usize) {
    for c in 0..channels {
        let src = if im.channels == 1 { 0 } else { c };
        out.extend(im.hwc.iter().skip(src).step_by(im.channels));
    }
}

fn decode(path: &Path) -> Result<Decoded> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    // Palette → RGB(A), gray below 8 bits → 8 bits, 16 bits → 8 bits: every output is 8-bit.
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .with_context(|| format!("{}: not a readable PNG", path.display()))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .with_context(|| format!("{}: corrupt PNG data", path.display()))?;
    buf.truncate(info.buffer_size());
    ensure!(
        info.bit_depth == png::BitDepth::Eight,
        "{}: {:?}-bit output after expansion",
        path.display(),
        info.bit_depth
    );
    let (hwc, channels) = match info.color_type {
        png::ColorType::Grayscale => (buf, 1),
        png::ColorType::Rgb => (buf, 3),
        png::ColorType::GrayscaleAlpha => (buf.chunks(2).map(|p| p[0]).collect(), 1),
        png::ColorType::Rgba => (buf.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect(), 3),
        png::ColorType::Indexed => bail!("{}: palette was not expanded", path.display()),
    };
    Ok(Decoded {
        path: path.to_path_buf(),
        height: info.height as usize,
        width: info.width as usize,
        channels,
        hwc,
    })
}
