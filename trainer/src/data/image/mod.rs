//! Image files decoded to 8-bit pixels, and the crops and resizes the references apply to them.
//!
//! [`decode`] reads JPEG (libjpeg-turbo: baseline, progressive, grayscale, CMYK/YCCK), PNG, WebP
//! and a pack's raw pixels ([`raw`]) by their magic bytes, so a misnamed file still decodes;
//! anything else, or a file cut short, is an error saying which. [`resize`] holds torchvision's transforms on decoded pictures.

pub mod jpeg;
mod png;
pub mod raw;
pub mod resize;
pub mod tiles;
mod webp;

use anyhow::{bail, Context, Result};
use std::path::Path;

/// A decoded picture: `height` rows of `width` pixels of `channels` bytes (1 gray, 3 RGB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub pixels: Vec<u8>,
}

impl Picture {
    /// Gray replicated to three channels (Pillow's `convert("RGB")` of an `L` image).
    pub fn into_rgb(self) -> Picture {
        if self.channels == 3 {
            return self;
        }
        let pixels = self.pixels.iter().flat_map(|&v| [v, v, v]).collect();
        Picture {
            channels: 3,
            pixels,
            ..self
        }
    }

    /// Appends the pixels as channel planes (`C×H×W`), gray repeated up to `channels`.
    pub fn append_planes(&self, out: &mut Vec<u8>, channels: usize) {
        for c in 0..channels {
            let src = if self.channels == 1 { 0 } else { c };
            out.extend(self.pixels.iter().skip(src).step_by(self.channels));
        }
    }
}

/// The file formats told apart by their first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Jpeg,
    Png,
    Webp,
    Raw,
}

fn sniff(bytes: &[u8]) -> Option<Kind> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Kind::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Kind::Png)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(Kind::Webp)
    } else if bytes.starts_with(&raw::MAGIC) {
        Some(Kind::Raw)
    } else {
        None
    }
}

/// Whether the bytes start as a JPEG file does.
pub fn is_jpeg(bytes: &[u8]) -> bool {
    sniff(bytes) == Some(Kind::Jpeg)
}

/// Decode a JPEG, PNG or WebP file's bytes.
pub fn decode(bytes: &[u8]) -> Result<Picture> {
    match sniff(bytes) {
        Some(Kind::Jpeg) => jpeg::decode(bytes),
        Some(Kind::Png) => png::decode(bytes),
        Some(Kind::Webp) => webp::decode(bytes),
        Some(Kind::Raw) => raw::decode(bytes),
        None if bytes.is_empty() => bail!("empty file"),
        None => bail!(
            "not a JPEG, PNG or WebP image (it starts with bytes {:02x?})",
            &bytes[..bytes.len().min(8)]
        ),
    }
}

/// Read and decode the image at `path`, naming it in any error.
pub fn read(path: &Path) -> Result<Picture> {
    let bytes = super::read_file(path)?;
    decode(&bytes).with_context(|| format!("{}: cannot decode", path.display()))
}

/// Whether the file name ends like an image this module reads.
pub fn has_image_extension(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".jpg", ".jpeg", ".png", ".webp"]
        .iter()
        .any(|x| lower.ends_with(x))
}
