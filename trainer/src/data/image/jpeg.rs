//! JPEG through zune-jpeg. Gray files stay one channel; CMYK and YCCK become RGB by the
//! multiplicative rule Pillow uses (`R = (255−C)(255−K)/255` on Adobe's inverted storage).

use super::Picture;
use anyhow::{bail, ensure, Result};
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

/// The end-of-image marker: a file without it was cut short (zune-jpeg would pad it with gray).
const END_OF_IMAGE: [u8; 2] = [0xFF, 0xD9];

pub fn decode(bytes: &[u8]) -> Result<Picture> {
    ensure!(
        ends_with_marker(bytes),
        "truncated JPEG: the end-of-image marker is missing ({} bytes)",
        bytes.len()
    );
    let mut probe = JpegDecoder::new(bytes);
    probe.decode_headers().map_err(describe)?;
    let gray = probe.get_input_colorspace() == Some(ColorSpace::Luma);
    let (out, channels) = if gray {
        (ColorSpace::Luma, 1)
    } else {
        (ColorSpace::RGB, 3)
    };
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(out)
        .set_max_width(1 << 15)
        .set_max_height(1 << 15);
    let mut decoder = JpegDecoder::new_with_options(bytes, options);
    let pixels = decoder.decode().map_err(describe)?;
    let info = decoder.info().expect("headers were decoded");
    let (width, height) = (usize::from(info.width), usize::from(info.height));
    if pixels.len() != width * height * channels {
        bail!(
            "decoder returned {} bytes for {width}x{height}x{channels}",
            pixels.len()
        );
    }
    Ok(Picture {
        width,
        height,
        channels,
        pixels,
    })
}

/// Trailing padding after the marker is common (cameras, some encoders); allow a little.
fn ends_with_marker(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    tail.windows(2).any(|w| w == END_OF_IMAGE)
}

fn describe(e: zune_jpeg::errors::DecodeErrors) -> anyhow::Error {
    anyhow::anyhow!("corrupt JPEG: {e:?}")
}
