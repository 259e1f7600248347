//! The bytes of a pack file. Every integer is little-endian.
//!
//! ```text
//! 0        prefix (64 bytes): magic "NLSPACK\0", version u32, header length u32, rows u64,
//!          names length u64, SHA-256 of everything from the header to the data (32 bytes)
//! 64       header: JSON ([`Header`]: dataset, classes, splits as row ranges, encoding)
//! page     index: one 48-byte [`Row`] per sample
//!          names: each sample's locator (its path in the release), UTF-8, back to back
//!          order: u32 row numbers sorted by locator, for lookups by path
//! page     data: each sample (its file as it is, or re-encoded), starting on a page boundary
//! ```
//!
//! A row is written only after its sample's bytes, so a pack cut short by a crash holds a
//! prefix of complete rows (each checked by its CRC-32 when packing resumes).

use super::encode::Encoding;
use crate::data::DatasetName;
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};

pub const MAGIC: [u8; 8] = *b"NLSPACK\0";
pub const VERSION: u32 = 1;
/// Samples start on page boundaries, so that a memory map reads each with whole pages.
pub const PAGE: u64 = 4096;
pub const PREFIX: usize = 64;
pub const ROW: usize = 48;

/// What a pack holds, in its header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub dataset: DatasetName,
    /// The dataset the pack was made from (`Source::describe`).
    pub packed_from: String,
    pub classes: Vec<String>,
    /// Named splits (`train`, `test`, and a second test set where the dataset has one), each
    /// a range of rows `[start, end)`.
    pub splits: Vec<(String, [u64; 2])>,
    /// How samples are stored: `file` (the image file's bytes as they are), `jpeg` or `raw`
    /// (decoded and stored again, fitted to `max_side`; [`Encoding`]).
    pub encoding: Encoding,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_side: Option<usize>,
    /// The re-encoded JPEGs' quality.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
}

/// Where each region of a pack of `rows` samples starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub header_len: u64,
    pub rows: u64,
    pub names_len: u64,
    pub index_start: u64,
    pub names_start: u64,
    pub order_start: u64,
    pub data_start: u64,
}

impl Layout {
    pub fn new(header_len: u64, rows: u64, names_len: u64) -> Layout {
        let index_start = page_align(PREFIX as u64 + header_len);
        let names_start = index_start + rows * ROW as u64;
        let order_start = (names_start + names_len).div_ceil(4) * 4;
        Layout {
            header_len,
            rows,
            names_len,
            index_start,
            names_start,
            order_start,
            data_start: page_align(order_start + 4 * rows),
        }
    }

    /// Where row `i` is.
    pub fn row_at(&self, i: u64) -> usize {
        (self.index_start + i * ROW as u64) as usize
    }
}

pub fn page_align(x: u64) -> u64 {
    x.div_ceil(PAGE) * PAGE
}

/// One sample: where its bytes and its locator are, their CRC-32, its label and its id (its
/// place in the dataset's official order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Row {
    pub data_off: u64,
    pub data_len: u64,
    pub name_off: u64,
    pub name_len: u32,
    pub crc: u32,
    pub label: i64,
    pub id: u64,
}

impl Row {
    /// Rows are zero until written, and data never starts at 0.
    pub fn written(&self) -> bool {
        self.data_off != 0
    }

    pub fn encode(&self) -> [u8; ROW] {
        let mut b = [0u8; ROW];
        b[0..8].copy_from_slice(&self.data_off.to_le_bytes());
        b[8..16].copy_from_slice(&self.data_len.to_le_bytes());
        b[16..24].copy_from_slice(&self.name_off.to_le_bytes());
        b[24..28].copy_from_slice(&self.name_len.to_le_bytes());
        b[28..32].copy_from_slice(&self.crc.to_le_bytes());
        b[32..40].copy_from_slice(&self.label.to_le_bytes());
        b[40..48].copy_from_slice(&self.id.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Row {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        Row {
            data_off: u64_at(0),
            data_len: u64_at(8),
            name_off: u64_at(16),
            name_len: u32_at(24),
            crc: u32_at(28),
            label: u64_at(32) as i64,
            id: u64_at(40),
        }
    }
}

/// The prefix's fields: header length, rows, names length and the checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub header_len: u64,
    pub rows: u64,
    pub names_len: u64,
    pub sha256: [u8; 32],
}

impl Prefix {
    pub fn encode(&self) -> [u8; PREFIX] {
        let mut b = [0u8; PREFIX];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(self.header_len as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.rows.to_le_bytes());
        b[24..32].copy_from_slice(&self.names_len.to_le_bytes());
        b[32..64].copy_from_slice(&self.sha256);
        b
    }

    /// The prefix of `bytes`, or what is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<Prefix> {
        ensure!(
            bytes.len() >= PREFIX && bytes[..8] == MAGIC,
            "not a pack (it does not start with {:?})",
            String::from_utf8_lossy(&MAGIC)
        );
        let version = u32::from_le_bytes(bytes[8..12].try_into()?);
        ensure!(
            version == VERSION,
            "pack version {version}; this trainer reads version {VERSION}: re-pack the dataset"
        );
        Ok(Prefix {
            header_len: u64::from(u32::from_le_bytes(bytes[12..16].try_into()?)),
            rows: u64::from_le_bytes(bytes[16..24].try_into()?),
            names_len: u64::from_le_bytes(bytes[24..32].try_into()?),
            sha256: bytes[32..64].try_into().context("checksum")?,
        })
    }

    pub fn layout(&self) -> Layout {
        Layout::new(self.header_len, self.rows, self.names_len)
    }
}
