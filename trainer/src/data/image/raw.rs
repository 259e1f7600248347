//! Decoded pixels stored as they are (a pack's `--encoding raw`): the magic `NLSRAW1\0`, then
//! width, height and channels as little-endian u32, then the rows. Reading one is a copy.

use super::Picture;
use anyhow::{ensure, Result};

pub const MAGIC: [u8; 8] = *b"NLSRAW1\0";
const HEAD: usize = MAGIC.len() + 12;

pub fn encode(picture: &Picture) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEAD + picture.pixels.len());
    bytes.extend_from_slice(&MAGIC);
    for n in [picture.width, picture.height, picture.channels] {
        bytes.extend_from_slice(&(n as u32).to_le_bytes());
    }
    bytes.extend_from_slice(&picture.pixels);
    bytes
}

pub fn decode(bytes: &[u8]) -> Result<Picture> {
    ensure!(
        bytes.len() >= HEAD,
        "raw pixels cut short: {} bytes",
        bytes.len()
    );
    let field = |i: usize| {
        let at = MAGIC.len() + 4 * i;
        u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize
    };
    let (width, height, channels) = (field(0), field(1), field(2));
    ensure!(
        matches!(channels, 1 | 3),
        "raw pixels with {channels} channels (1 or 3 expected)"
    );
    let expected = width * height * channels;
    ensure!(
        bytes.len() - HEAD == expected,
        "raw pixels of {width}x{height}x{channels} hold {} bytes, not {expected}",
        bytes.len() - HEAD
    );
    Ok(Picture {
        width,
        height,
        channels,
        pixels: bytes[HEAD..].to_vec(),
    })
}
