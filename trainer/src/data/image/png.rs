//! PNG through the png crate: palettes expanded, 16 bits cut to their high byte, alpha dropped
//! (as Pillow's `convert("RGB")` / `convert("L")` do).

use super::Picture;
use anyhow::{bail, ensure, Context, Result};

pub fn decode(bytes: &[u8]) -> Result<Picture> {
    let mut decoder = png::Decoder::new(bytes);
    // Palette → RGB(A), gray below 8 bits → 8 bits, 16 bits → 8 bits: every output is 8-bit.
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().context("not a readable PNG")?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).context("corrupt PNG data")?;
    buf.truncate(info.buffer_size());
    ensure!(
        info.bit_depth == png::BitDepth::Eight,
        "{:?}-bit output after expansion",
        info.bit_depth
    );
    let (pixels, channels) = match info.color_type {
        png::ColorType::Grayscale => (buf, 1),
        png::ColorType::Rgb => (buf, 3),
        png::ColorType::GrayscaleAlpha => (buf.chunks(2).map(|p| p[0]).collect(), 1),
        png::ColorType::Rgba => (buf.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect(), 3),
        png::ColorType::Indexed => bail!("palette was not expanded"),
    };
    Ok(Picture {
        width: info.width as usize,
        height: info.height as usize,
        channels,
        pixels,
    })
}
