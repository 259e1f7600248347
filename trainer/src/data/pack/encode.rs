//! How `trainer pack` stores each sample: the file as it is, or decoded and stored again —
//! as a JPEG, or as raw pixels ([`crate::data::image::raw`]) — at most `max_side` pixels on its
//! longer side. Re-encoded packs are smaller (a 1000-pixel photograph at 512) or faster to read
//! (raw pixels are a copy); the file as it is keeps the release's bytes.

use crate::data::image::resize::Resampler;
use crate::data::image::{self, jpeg, raw, Picture};
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// The image file's bytes as they are.
    #[default]
    File,
    /// Decoded, fitted to `max_side`, encoded again as JPEG at `quality`.
    Jpeg,
    /// Decoded, fitted to `max_side`, stored as pixels.
    Raw,
    /// A JPEG rewritten losslessly with a restart marker every 32 pixels or so of each row
    /// (see `image::tiles`): the same pixels, and a crop entropy-decodes only its tiles. Other
    /// files, and JPEGs that cannot be (CMYK), are kept as they are.
    Tiles,
}

/// The encoding and its settings, as a pack's header records them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Storage {
    pub encoding: Encoding,
    pub max_side: Option<usize>,
    pub quality: u8,
}

/// FFCV's quality for re-encoded datasets (Pillow's default is 75).
pub const DEFAULT_QUALITY: u8 = 90;

impl Storage {
    pub fn check(&self) -> Result<()> {
        ensure!(
            !matches!(self.encoding, Encoding::File | Encoding::Tiles) || self.max_side.is_none(),
            "--max-side re-encodes the images: add --encoding jpeg or --encoding raw"
        );
        ensure!(
            self.max_side.is_none_or(|m| m >= 8),
            "--max-side must be at least 8 pixels"
        );
        ensure!(
            (1..=100).contains(&self.quality),
            "--quality must be within 1–100"
        );
        Ok(())
    }

    /// The bytes to store for a file's `bytes`. A file that does not decode is kept as it is,
    /// so that the runs reading the pack apply their own `--bad-images` policy to it.
    pub fn store(&self, bytes: Vec<u8>, resampler: &mut Resampler) -> Result<Vec<u8>> {
        match self.encoding {
            Encoding::File => return Ok(bytes),
            Encoding::Tiles => return Ok(image::tiles::restart_every(&bytes).unwrap_or(bytes)),
            _ => {}
        }
        let picture = match image::decode(&bytes) {
            Ok(picture) => self.fit(picture, resampler)?,
            Err(_) => return Ok(bytes),
        };
        match self.encoding {
            Encoding::Jpeg => jpeg::encode(&picture, self.quality),
            _ => Ok(raw::encode(&picture)),
        }
    }

    /// The picture with its longer side at most `max_side` (antialiased bilinear, as PIL's
    /// `thumbnail`); a resized gray picture becomes RGB.
    fn fit(&self, picture: Picture, resampler: &mut Resampler) -> Result<Picture> {
        let (h, w) = (picture.height, picture.width);
        let Some(max) = self.max_side.filter(|&m| h.max(w) > m) else {
            return Ok(picture);
        };
        let scale = max as f64 / h.max(w) as f64;
        let side = |n: usize| ((n as f64 * scale).round() as usize).max(1);
        resampler.resize(&picture.into_rgb(), (side(h), side(w)))
    }
}
