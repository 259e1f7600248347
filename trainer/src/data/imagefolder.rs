//! The ImageFolder layout the original tools use: `<root>/{train,test}/<class>/<image>.png`.
//! Classes are the sorted folder names of `train/` (torchvision's convention); images are
//! sorted by file name within each class, and that order gives the sample ids.

use super::{DatasetName, Format, RawSplit, Source, Split};
use anyhow::{bail, ensure, Context, Result};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

fn split_dir(split: Split) -> &'static str {
    match split {
        Split::Train => "train",
        Split::Test => "test",
    }
}

/// Sorted names of the sub-folders (or, with `files`, the PNG files) of `dir`; hidden entries skipped.
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
    let test_classes = sorted_entries(&test, false)?;
    ensure!(
        test_classes == classes,
        "{}: test classes {test_classes:?} differ from train classes {classes:?}",
        dir.display()
    );
    Ok(Some(Source {
        name: DatasetName::ImageFolder,
        format: Format::ImageFolder,
        root: dir.to_path_buf(),
        num_classes: classes.len(),
        class_names: classes,
    }))
}

/// A decoded image, height × width × channels (1 or 3).
struct Decoded {
    path: PathBuf,
    height: usize,
    width: usize,
    channels: usize,
    hwc: Vec<u8>,
}

pub fn read_split(root: &Path, split: Split, classes: &[String]) -> Result<RawSplit> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    let mut paths = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let dir = root.join(split_dir(split)).join(class);
        for file in sorted_entries(&dir, true)? {
            images.push(decode(&dir.join(&file))?);
            labels.push(label as i64);
            paths.push(format!("{}/{class}/{file}", split_dir(split)));
        }
    }
    ensure!(
        !images.is_empty(),
        "{}: no images",
        root.join(split_dir(split)).display()
    );
    let (h, w) = (images[0].height, images[0].width);
    if let Some(bad) = images.iter().find(|im| (im.height, im.width) != (h, w)) {
        bail!(
            "{}: image is {}x{} (width x height), but {} is {w}x{h}; all images of a split must share one size",
            bad.path.display(),
            bad.width,
            bad.height,
            images[0].path.display()
        );
    }
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
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .with_context(|| format!("{}: not a readable PNG", path.display()))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .with_context(|| format!("{}: corrupt PNG data", path.display()))?;
    buf.truncate(info.buffer_size());
    let (height, width) = (info.height as usize, info.width as usize);
    let (hwc, channels) = match info.color_type {
        png::ColorType::Grayscale => (buf, 1),
        png::ColorType::Rgb => (buf, 3),
        png::ColorType::GrayscaleAlpha => (buf.chunks(2).map(|p| p[0]).collect(), 1),
        png::ColorType::Rgba => (buf.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect(), 3),
        png::ColorType::Indexed => bail!("{}: palette was not expanded", path.display()),
    };
    Ok(Decoded {
        path: path.to_path_buf(),
        height,
        width,
        channels,
        hwc,
    })
}
