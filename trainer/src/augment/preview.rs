//! The `augment-preview` grid: each image next to a few of its augmented views, as one RGB PNG,
//! so a recipe can be checked by eye before hours of pretraining are spent on it.
//!
//! Everything here is a pure function of tensors: the cells are an `R×C×3×h×w` uint8 tensor
//! ([`preview_cells`]), upscaled by nearest neighbour ([`upscale`]) so 28–32 px images are
//! visible, laid out with white gutters ([`compose`]) and encoded ([`encode_png`]).

use super::{augment, to_unit_float, AugmentConfig, ViewKey};
use anyhow::{ensure, Context, Result};
use tch::{Kind, Tensor};

/// White space between cells, in output pixels (not scaled with the cells).
pub const GUTTER: i64 = 2;

/// An 8-bit RGB image, rows top to bottom, pixels `r, g, b` interleaved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// The inverse of [`super::normalize`]: `x·std + mean` per channel, clamped to `[0, 1]`.
pub fn unnormalize(x: &Tensor, mean: [f64; 3], std: [f64; 3]) -> Tensor {
    let channel = |v: [f64; 3]| {
        Tensor::from_slice(&v)
            .to_kind(Kind::Float)
            .to_device(x.device())
            .view([1, 3, 1, 1])
    };
    (x * channel(std) + channel(mean)).clamp(0.0, 1.0)
}

/// Float `[0, 1]` → uint8 `[0, 255]`, rounding to the nearest level.
pub fn to_bytes(x: &Tensor) -> Tensor {
    (x * 255.0).round().clamp(0.0, 255.0).to_kind(Kind::Uint8)
}

/// uint8 `N×3×H×W` at `size × size`: unchanged when it already is (so the original cell shows
/// the stored pixels exactly), else bilinearly resized as the augmentations' crop resize is.
pub fn fit(images: &Tensor, size: i64) -> Tensor {
    let (_, _, h, w) = images.size4().expect("N×3×H×W batch");
    if (h, w) == (size, size) {
        return images.shallow_clone();
    }
    let resized = to_unit_float(images).upsample_bilinear2d([size, size], false, None, None);
    to_bytes(&resized)
}

/// Nearest-neighbour upscaling of the last two dimensions by an integer `scale`.
pub fn upscale(x: &Tensor, scale: i64) -> Tensor {
    let dims = x.dim() as i64;
    x.repeat_interleave_self_int(scale, dims - 2, None)
        .repeat_interleave_self_int(scale, dims - 1, None)
}

/// One row per image of uint8 `images` (`N×3×H×W`): the original fitted to the output size,
/// then `views` augmented views with `key.view` = 0, 1, … As uint8 `N×(1+views)×3×S×S`.
pub fn preview_cells(images: &Tensor, cfg: &AugmentConfig, views: u64, key: ViewKey) -> Tensor {
    let mut columns = vec![fit(images, cfg.size)];
    for view in 0..views {
        let y = augment(images, cfg, key.with_view(view));
        columns.push(to_bytes(&unnormalize(&y, cfg.mean, cfg.std)));
    }
    Tensor::stack(&columns, 1)
}

/// Lay out uint8 cells `R×C×3×h×w` as one image with `gutter` white pixels between cells.
///
/// Each cell is padded white on its right and bottom, the padded cells are tiled with one
/// permute + reshape, and the trailing gutter of the last row and column is cut off.
pub fn compose(cells: &Tensor, gutter: i64) -> Result<RgbImage> {
    let size = cells.size();
    let &[rows, cols, 3, h, w] = size.as_slice() else {
        anyhow::bail!("compose expects R×C×3×h×w cells, got shape {size:?}");
    };
    ensure!(cells.kind() == Kind::Uint8, "compose expects uint8 cells");
    let padded = cells
        .to_kind(Kind::Float)
        .pad([0, gutter, 0, gutter], "constant", 255.0)
        .to_kind(Kind::Uint8);
    let (ph, pw) = (h + gutter, w + gutter);
    let tiled = padded
        .permute([0, 3, 1, 4, 2]) // R, h, C, w, 3
        .reshape([rows * ph, cols * pw, 3])
        .narrow(0, 0, rows * ph - gutter)
        .narrow(1, 0, cols * pw - gutter)
        .contiguous();
    let (width, height) = (cols * pw - gutter, rows * ph - gutter);
    let pixels = Vec::<u8>::try_from(tiled.flatten(0, -1)).context("copying the grid")?;
    Ok(RgbImage {
        width: width.try_into().context("grid too wide")?,
        height: height.try_into().context("grid too tall")?,
        pixels,
    })
}

/// Encode as an 8-bit RGB PNG.
pub fn encode_png(image: &RgbImage) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, image.width, image.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("writing the PNG header")?;
    writer
        .write_image_data(&image.pixels)
        .context("encoding the PNG")?;
    writer.finish().context("finishing the PNG")?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(values: &[u8], shape: &[i64]) -> Tensor {
        Tensor::from_slice(values).view(shape)
    }

    #[test]
    fn upscale_repeats_each_pixel() {
        let x = bytes(&[1, 2, 3, 4], &[1, 2, 2]);
        let y = upscale(&x, 2);
        let want = bytes(
            &[1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4],
            &[1, 4, 4],
        );
        assert!(y.equal(&want), "{y:?}");
    }

    #[test]
    fn unnormalize_inverts_normalize_and_clamps() {
        let (mean, std) = ([0.1, 0.5, 0.9], [0.2, 0.3, 0.4]);
        let x = Tensor::rand([2, 3, 4, 4], (Kind::Float, tch::Device::Cpu));
        let back = unnormalize(&super::super::normalize(&x, mean, std), mean, std);
        assert!(back.allclose(&x, 1e-5, 1e-6, false));
        let far = Tensor::full([1, 3, 1, 1], 100.0, (Kind::Float, tch::Device::Cpu));
        assert_eq!(unnormalize(&far, mean, std).max().double_value(&[]), 1.0);
    }

    #[test]
    fn to_bytes_rounds() {
        let x = Tensor::from_slice(&[0.0f32, 0.5 / 255.0 + 1e-4, 1.0, 1.5, -0.2]);
        assert_eq!(
            Vec::<u8>::try_from(to_bytes(&x)).unwrap(),
            [0, 1, 255, 255, 0]
        );
    }

    #[test]
    fn compose_places_cells_and_white_gutters() {
        // 2 rows × 2 columns of 1×1 cells with values 10, 20 / 30, 40 (gray), gutter 1.
        let cells = bytes(
            &[10, 10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40],
            &[2, 2, 3, 1, 1],
        );
        let img = compose(&cells, 1).unwrap();
        assert_eq!((img.width, img.height), (3, 3));
        let px: Vec<u8> = img.pixels.chunks(3).map(|p| p[0]).collect();
        assert_eq!(px, [10, 255, 20, 255, 255, 255, 30, 255, 40]);
        assert!(img.pixels.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    }

    #[test]
    fn compose_keeps_channel_order() {
        let cells = bytes(&[1, 2, 3], &[1, 1, 3, 1, 1]);
        assert_eq!(compose(&cells, 2).unwrap().pixels, [1, 2, 3]);
    }

    #[test]
    fn png_round_trip() {
        let img = RgbImage {
            width: 2,
            height: 1,
            pixels: vec![1, 2, 3, 4, 5, 6],
        };
        let png = encode_png(&img).unwrap();
        let mut reader = png::Decoder::new(png.as_slice()).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (2, 1));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(&buf[..info.buffer_size()], img.pixels.as_slice());
    }

    #[test]
    fn cells_start_with_the_original() {
        let images = Tensor::randint(256, [3, 3, 16, 16], (Kind::Uint8, tch::Device::Cpu));
        let cfg = AugmentConfig {
            size: 16,
            ..AugmentConfig::simclr()
        };
        let key = ViewKey {
            seed: 1,
            epoch: 0,
            step: 0,
            rank: 0,
            view: 0,
        };
        let cells = preview_cells(&images, &cfg, 2, key);
        assert_eq!(cells.size(), [3, 3, 3, 16, 16]);
        assert!(cells.select(1, 0).equal(&images));
        assert!(!cells.select(1, 1).equal(&images));
    }
}
