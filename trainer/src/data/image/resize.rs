//! torchvision's geometric transforms on decoded pictures, written as `C×H×W` bytes into a
//! batch buffer: `RandomResizedCrop` + `RandomHorizontalFlip` for training, `Resize` +
//! `CenterCrop` for evaluation. Resampling is fast_image_resize's convolution with the bilinear
//! (triangle) filter widened by the scale factor, which is what PIL's `resize(BILINEAR)` and
//! torchvision's `antialias=True` compute.

use super::Picture;
use anyhow::{ensure, Context, Result};
use fast_image_resize::images::{CroppedImage, Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

/// A crop in pixels, as torchvision's `get_params` returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crop {
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
}

/// Reusable resampling state: one per worker thread.
pub struct Resampler {
    resizer: Resizer,
    options: ResizeOptions,
}

impl Default for Resampler {
    fn default() -> Self {
        Self {
            resizer: Resizer::new(),
            options: ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        }
    }
}

impl Resampler {
    /// `crop` of the RGB `picture`, resized to `height × width`, mirrored when `flip`, written
    /// as channel planes into `out` (`3 × height × width` bytes).
    pub fn resized_crop(
        &mut self,
        picture: &Picture,
        crop: Crop,
        (height, width): (usize, usize),
        flip: bool,
        out: &mut [u8],
    ) -> Result<()> {
        let dst = self.resample(picture, crop, (height, width))?;
        to_planes(dst.buffer(), (height, width), flip, out);
        Ok(())
    }

    /// torchvision's `Resize(size)` of the RGB `picture`: its shorter side becomes `size`.
    pub fn resize_shorter(&mut self, picture: &Picture, size: usize) -> Result<Picture> {
        let (height, width) = shorter_side_to(picture.height, picture.width, size);
        let whole = Crop {
            top: 0,
            left: 0,
            height: picture.height,
            width: picture.width,
        };
        let dst = self.resample(picture, whole, (height, width))?;
        Ok(Picture {
            height,
            width,
            channels: 3,
            pixels: dst.into_vec(),
        })
    }

    /// `crop` of the RGB `picture` resized to `height × width`, interleaved.
    fn resample(
        &mut self,
        picture: &Picture,
        crop: Crop,
        (height, width): (usize, usize),
    ) -> Result<Image<'static>> {
        ensure!(picture.channels == 3, "resampling needs an RGB picture");
        ensure!(
            crop.top + crop.height <= picture.height && crop.left + crop.width <= picture.width,
            "crop {crop:?} leaves the {}x{} picture",
            picture.width,
            picture.height
        );
        let src = ImageRef::new(
            picture.width as u32,
            picture.height as u32,
            &picture.pixels,
            PixelType::U8x3,
        )?;
        // The crop is the whole source: the filter does not reach outside it, as with
        // torchvision's crop followed by resize.
        let part = CroppedImage::new(
            &src,
            crop.left as u32,
            crop.top as u32,
            crop.width as u32,
            crop.height as u32,
        )?;
        let mut dst = Image::new(width as u32, height as u32, PixelType::U8x3);
        self.resizer
            .resize(&part, &mut dst, &self.options)
            .context("resizing")?;
        Ok(dst)
    }

    /// torchvision's `Resize(resize)` (shorter side to `resize`) then `CenterCrop(crop)`.
    pub fn resize_center_crop(
        &mut self,
        picture: &Picture,
        resize: usize,
        crop: usize,
        out: &mut [u8],
    ) -> Result<()> {
        let (h, w) = shorter_side_to(picture.height, picture.width, resize);
        ensure!(
            crop <= h && crop <= w,
            "a {crop}-pixel centre crop needs a resize of at least {crop}"
        );
        let mut resized = vec![0u8; 3 * h * w];
        let whole = Crop {
            top: 0,
            left: 0,
            height: picture.height,
            width: picture.width,
        };
        self.resized_crop(picture, whole, (h, w), false, &mut resized)?;
        let (top, left) = (centre_offset(h, crop), centre_offset(w, crop));
        for (c, plane) in resized.chunks_exact(h * w).enumerate() {
            for y in 0..crop {
                let row = &plane[(top + y) * w + left..][..crop];
                out[(c * crop + y) * crop..][..crop].copy_from_slice(row);
            }
        }
        Ok(())
    }
}

/// Interleaved RGB rows → channel planes, mirrored left-right when `flip`.
fn to_planes(hwc: &[u8], (height, width): (usize, usize), flip: bool, out: &mut [u8]) {
    let plane = height * width;
    for y in 0..height {
        for x in 0..width {
            let src = (y * width + if flip { width - 1 - x } else { x }) * 3;
            for c in 0..3 {
                out[c * plane + y * width + x] = hwc[src + c];
            }
        }
    }
}

/// torchvision's `Resize(int)`: the shorter side becomes `size`, the longer
/// `int(size * long / short)`.
pub fn shorter_side_to(height: usize, width: usize, size: usize) -> (usize, usize) {
    let long_of = |long: usize, short: usize| (size as f64 * long as f64 / short as f64) as usize;
    if height <= width {
        (size, long_of(width, height))
    } else {
        (long_of(height, width), size)
    }
}

/// torchvision's `CenterCrop` offset: `int(round((size - crop) / 2.0))`, Python's round
/// taking halves to even.
pub fn centre_offset(size: usize, crop: usize) -> usize {
    let d = size - crop;
    let half = d / 2;
    if d % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}
