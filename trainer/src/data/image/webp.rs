//! WebP (lossy and lossless) through image-webp; alpha is dropped as Pillow's `convert("RGB")`
//! drops it.

use super::Picture;
use anyhow::{Context, Result};
use std::io::Cursor;

pub fn decode(bytes: &[u8]) -> Result<Picture> {
    let mut decoder =
        image_webp::WebPDecoder::new(Cursor::new(bytes)).context("corrupt WebP header")?;
    let (width, height) = decoder.dimensions();
    let (width, height) = (width as usize, height as usize);
    let size = decoder
        .output_buffer_size()
        .context("WebP image too large")?;
    let mut buf = vec![0; size];
    decoder.read_image(&mut buf).context("corrupt WebP data")?;
    let pixels = if decoder.has_alpha() {
        buf.chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect()
    } else {
        buf
    };
    Ok(Picture {
        width,
        height,
        channels: 3,
        pixels,
    })
}
