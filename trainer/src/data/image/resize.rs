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

impl Crop {
    /// The crop as a [`Window`] of the picture scaled by `1/denom` whose pixel (`x`, `y`) is
    /// the picture's first: a crop of part of a JPEG decoded at reduced scale.
    pub fn scaled_window(&self, denom: usize, (x, y): (usize, usize)) -> Window {
        let d = denom as f64;
        Window {
            top: self.top as f64 / d - y as f64,
            left: self.left as f64 / d - x as f64,
            height: self.height as f64 / d,
            width: self.width as f64 / d,
        }
    }
}

/// A crop whose edges may fall between pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub top: f64,
    pub left: f64,
    pub height: f64,
    pub width: f64,
}

impl From<Crop> for Window {
    fn from(c: Crop) -> Self {
        Window {
            top: c.top as f64,
            left: c.left as f64,
            height: c.height as f64,
            width: c.width as f64,
        }
    }
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
        crop: impl Into<Window>,
        (height, width): (usize, usize),
        flip: bool,
        out: &mut [u8],
    ) -> Result<()> {
        let dst = self.resample(picture, crop.into(), (height, width))?;
        to_planes(dst.buffer(), (height, width), flip, out);
        Ok(())
    }

    /// The whole RGB `picture` resized to `height × width`.
    pub fn resize(
        &mut self,
        picture: &Picture,
        (height, width): (usize, usize),
    ) -> Result<Picture> {
        let whole = Crop {
            top: 0,
            left: 0,
            height: picture.height,
            width: picture.width,
        };
        let dst = self.resample(picture, whole.into(), (height, width))?;
        Ok(Picture {
            height,
            width,
            channels: 3,
            pixels: dst.into_vec(),
        })
    }

    /// `window` of the RGB `picture` resized to `height × width`, interleaved.
    fn resample(
        &mut self,
        picture: &Picture,
        window: Window,
        (height, width): (usize, usize),
    ) -> Result<Image<'static>> {
        ensure!(picture.channels == 3, "resampling needs an RGB picture");
        // The whole pixels the window touches.
        let (left, top) = (window.left.floor(), window.top.floor());
        let right = (window.left + window.width).ceil();
        let bottom = (window.top + window.height).ceil();
        ensure!(
            left >= 0.0
                && top >= 0.0
                && right <= picture.width as f64
                && bottom <= picture.height as f64,
            "crop {window:?} leaves the {}x{} picture",
            picture.width,
            picture.height
        );
        let src = ImageRef::new(
            picture.width as u32,
            picture.height as u32,
            &picture.pixels,
            PixelType::U8x3,
        )?;
        // The crop's pixels are the whole source: the filter does not reach outside them, as
        // with torchvision's crop followed by resize.
        let part = CroppedImage::new(
            &src,
            left as u32,
            top as u32,
            (right - left) as u32,
            (bottom - top) as u32,
        )?;
        let options = (self.options).crop(
            window.left - left,
            window.top - top,
            window.width,
            window.height,
        );
        let mut dst = Image::new(width as u32, height as u32, PixelType::U8x3);
        self.resizer
            .resize(&part, &mut dst, &options)
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
        let dims = shorter_side_to(picture.height, picture.width, resize);
        self.resized_center_crop(picture, dims, crop, out)
    }

    /// `picture` resized to `(h, w)` then `CenterCrop(crop)`: [`Self::resize_center_crop`]
    /// with the resize's size given (that of the full-scale picture a reduced decode stands
    /// for).
    pub fn resized_center_crop(
        &mut self,
        picture: &Picture,
        (h, w): (usize, usize),
        crop: usize,
        out: &mut [u8],
    ) -> Result<()> {
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
    let (r, rest) = out[..3 * plane].split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    let rows = hwc.chunks_exact(3 * width).zip(r.chunks_exact_mut(width));
    for ((src, r), (g, b)) in rows.zip(g.chunks_exact_mut(width).zip(b.chunks_exact_mut(width))) {
        let pixels = src.chunks_exact(3);
        let mut put = |(i, px): (usize, &[u8])| {
            r[i] = px[0];
            g[i] = px[1];
            b[i] = px[2];
        };
        if flip {
            pixels.rev().enumerate().for_each(&mut put);
        } else {
            pixels.enumerate().for_each(&mut put);
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
