//! JPEG through libjpeg-turbo (the decoder Pillow uses, so pixels match Pillow's exactly), by
//! way of `csrc/jpeg_region.c`: a file can be decoded whole, or only over the rows and columns a
//! crop needs (rows below it are never entropy-decoded, columns beside it never transformed),
//! at full or reduced DCT scale. Gray files stay one channel; CMYK and YCCK become RGB by the
//! rule Pillow's `convert("RGB")` applies to Adobe's inverted storage.

use super::tiles::Tiles;
use super::Picture;
use anyhow::{bail, ensure, Result};
use std::ffi::{c_char, c_int, c_ulong, CStr};

/// The end-of-image marker: a file without it was cut short (the decoder would pad it).
pub(super) const END_OF_IMAGE: [u8; 2] = [0xFF, 0xD9];

#[repr(C)]
#[derive(Default)]
struct RawHeader {
    width: c_int,
    height: c_int,
    components: c_int,
}

#[repr(C)]
#[derive(Default)]
struct RawPart {
    x: c_int,
    y: c_int,
    width: c_int,
    height: c_int,
    channels: c_int,
}

extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn nls_jpeg_decode(
        data: *const u8,
        size: c_ulong,
        denom: c_int,
        x: c_int,
        y: c_int,
        width: c_int,
        height: c_int,
        out: *mut u8,
        capacity: usize,
        header: *mut RawHeader,
        part: *mut RawPart,
        message: *mut c_char,
        message_len: usize,
    ) -> c_int;
    #[allow(clippy::too_many_arguments)]
    fn nls_jpeg_encode(
        pixels: *const u8,
        width: c_int,
        height: c_int,
        channels: c_int,
        quality: c_int,
        restart_interval: c_int,
        out: *mut *mut u8,
        out_len: *mut c_ulong,
        message: *mut c_char,
        message_len: usize,
    ) -> c_int;
    fn nls_jpeg_restart(
        data: *const u8,
        size: c_ulong,
        interval: c_int,
        out: *mut *mut u8,
        out_len: *mut c_ulong,
        message: *mut c_char,
        message_len: usize,
    ) -> c_int;
    fn nls_jpeg_free(bytes: *mut u8);
}

/// A JPEG's size at full scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub width: usize,
    pub height: usize,
}

/// A rectangle in pixels of the image at the scale being decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

/// Part of a decoded image: `picture` is the rectangle whose top-left pixel is (`x`, `y`) of
/// the image scaled by `1/denom`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub picture: Picture,
    pub x: usize,
    pub y: usize,
    pub denom: usize,
}

/// Columns decoded beyond a region's right edge: libjpeg's "fancy" chroma upsampling treats the
/// last decoded column as the image's edge, which changes it (by up to 26 grey levels on noise).
const RIGHT_MARGIN: usize = 8;

/// The same on the left: libjpeg starts a crop at the block edge at or left of it, whose column
/// is then an edge too (6 grey levels on a 4:2:2 picture cut at x = 32); one column more moves
/// the start a block left when the region begins on a block edge.
const LEFT_MARGIN: usize = 1;

/// The DCT scales libjpeg decodes at, as `1/denom`.
pub const DENOMS: [usize; 4] = [1, 2, 4, 8];

/// The coarsest of [`DENOMS`] for which `fits(denom)` holds; 1 when none does.
pub fn coarsest_denom(fits: impl Fn(usize) -> bool) -> usize {
    DENOMS.into_iter().rev().find(|&d| fits(d)).unwrap_or(1)
}

impl Region {
    /// The whole image of `header` decoded at `1/denom`.
    pub fn whole(header: Header, denom: usize) -> Region {
        Region {
            x: 0,
            y: 0,
            width: scaled(header.width, denom),
            height: scaled(header.height, denom),
        }
    }
}

/// libjpeg's size of a `side`-pixel side decoded at `1/denom`: rounded up.
pub fn scaled(side: usize, denom: usize) -> usize {
    side.div_ceil(denom)
}

pub fn header(bytes: &[u8]) -> Result<Header> {
    check_complete(bytes)?;
    let (header, _) = call(bytes, 1, None, None)?;
    Ok(Header {
        width: header.width as usize,
        height: header.height as usize,
    })
}

/// The C side: the header, and `region` at `1/denom` decoded into `out` when given.
fn call(
    bytes: &[u8],
    denom: usize,
    region: Option<Region>,
    out: Option<&mut [u8]>,
) -> Result<(RawHeader, RawPart)> {
    let (mut header, mut part) = (RawHeader::default(), RawPart::default());
    let r = region.unwrap_or(Region {
        x: 0,
        y: 0,
        width: 0,
        height: 0,
    });
    let (out, capacity) = match out {
        Some(out) => (out.as_mut_ptr(), out.len()),
        None => (std::ptr::null_mut(), 0),
    };
    let mut message = [0 as c_char; 200];
    // SAFETY: every pointer is valid for the length passed with it; the C side writes only
    // `header`, `part`, at most `capacity` bytes of `out` (checking the region against the
    // image and the buffer first) and at most `message.len()` bytes of `message`,
    // NUL-terminated.
    let rc = unsafe {
        nls_jpeg_decode(
            bytes.as_ptr(),
            bytes.len() as c_ulong,
            denom as c_int,
            r.x as c_int,
            r.y as c_int,
            r.width as c_int,
            r.height as c_int,
            out,
            capacity,
            &mut header,
            &mut part,
            message.as_mut_ptr(),
            message.len(),
        )
    };
    if rc != 0 {
        bail!("corrupt JPEG: {}", text(&message));
    }
    Ok((header, part))
}

/// The whole image at full scale.
pub fn decode(bytes: &[u8]) -> Result<Picture> {
    let header = header(bytes)?;
    Ok(decode_region(bytes, header, 1, Region::whole(header, 1))?.picture)
}

/// `region` of the image (whose [`header`] is `header`) decoded at `1/denom` scale, `region` in
/// that scale's pixels. The part returned may start left of the region and be wider: libjpeg
/// cuts columns at block edges.
pub fn decode_region(bytes: &[u8], header: Header, denom: usize, region: Region) -> Result<Part> {
    decode_region_into(bytes, header, denom, region, Vec::new())
}

/// [`decode_region`] into `pixels`' allocation: a worker reusing one buffer spares the
/// allocator and the kernel a fresh zeroed megabyte per image.
pub fn decode_region_into(
    bytes: &[u8],
    header: Header,
    denom: usize,
    region: Region,
    mut pixels: Vec<u8>,
) -> Result<Part> {
    ensure!(DENOMS.contains(&denom), "no DCT scale 1/{denom}");
    // Rows of the whole scaled width bound whatever libjpeg widens the region to.
    let full_width = scaled(header.width, denom);
    let right =
        (region.x + region.width + RIGHT_MARGIN).min(full_width.max(region.x + region.width));
    let left = region.x.saturating_sub(LEFT_MARGIN);
    pixels.resize(full_width * region.height * 4, 0);
    let region = Region {
        x: left,
        width: right - left,
        ..region
    };
    let (_, part) = match cut_to(bytes, denom, region) {
        Some(cut) => {
            let shift = |r: Region| Region {
                x: r.x - cut.x / denom,
                y: r.y - cut.y / denom,
                ..r
            };
            let (h, mut part) = call(&cut.bytes, denom, Some(shift(region)), Some(&mut pixels))?;
            part.x += (cut.x / denom) as c_int;
            part.y += (cut.y / denom) as c_int;
            (h, part)
        }
        None => call(bytes, denom, Some(region), Some(&mut pixels))?,
    };
    let (w, h, channels) = (
        part.width as usize,
        part.height as usize,
        part.channels as usize,
    );
    pixels.truncate(w * h * channels);
    let picture = match channels {
        1 | 3 => Picture {
            width: w,
            height: h,
            channels,
            pixels,
        },
        4 => Picture {
            width: w,
            height: h,
            channels: 3,
            pixels: inverted_cmyk_to_rgb(&pixels),
        },
        n => bail!("a JPEG decoded to {n} channels"),
    };
    Ok(Part {
        picture,
        x: part.x as usize,
        y: part.y as usize,
        denom,
    })
}

/// The tiles over `region` (at `1/denom`) as a JPEG of their own, when the file is tiled
/// ([`Tiles`]) and they are not the whole image.
fn cut_to(bytes: &[u8], denom: usize, region: Region) -> Option<super::tiles::Cut> {
    let columns = (region.x * denom, (region.x + region.width) * denom);
    let rows = (region.y * denom, (region.y + region.height) * denom);
    Tiles::parse(bytes)?.cut(columns, rows)
}

/// `picture` (gray or RGB) as a JPEG of `quality` (1–100) with 4:2:0 chroma, as Pillow's
/// `save(quality=q)` writes it, laid out as tiles ([`Tiles`]): restart markers change no pixel
/// and let a crop decode only its tiles.
pub fn encode(picture: &Picture, quality: u8) -> Result<Vec<u8>> {
    ensure!(
        matches!(picture.channels, 1 | 3),
        "JPEG holds gray or RGB, not {} channels",
        picture.channels
    );
    ensure!(
        (1..=100).contains(&quality),
        "JPEG quality {quality} is not within 1–100"
    );
    ensure!(
        picture.pixels.len() == picture.width * picture.height * picture.channels,
        "a {}x{}x{} picture of {} bytes",
        picture.width,
        picture.height,
        picture.channels,
        picture.pixels.len()
    );
    // One 8×8 block per MCU in gray, 16×16 at 4:2:0.
    let mcu_width = if picture.channels == 1 { 8 } else { 16 };
    let restart = super::tiles::interval(picture.width, mcu_width);
    // SAFETY: `pixels` holds height × width × channels bytes (a Picture's invariant).
    malloced("encoding a JPEG", |out, len, message, message_len| unsafe {
        nls_jpeg_encode(
            picture.pixels.as_ptr(),
            picture.width as c_int,
            picture.height as c_int,
            picture.channels as c_int,
            c_int::from(quality),
            restart as c_int,
            out,
            len,
            message,
            message_len,
        )
    })
}

/// The JPEG's coefficients unchanged, coded again as one baseline scan restarting every
/// `interval` MCUs (libjpeg's lossless transcoding, as `jpegtran -optimize -restart`).
pub fn restart(bytes: &[u8], interval: usize) -> Result<Vec<u8>> {
    check_complete(bytes)?;
    // SAFETY: `bytes` is valid for its length.
    malloced(
        "rewriting a JPEG with restart markers",
        |out, len, message, message_len| unsafe {
            nls_jpeg_restart(
                bytes.as_ptr(),
                bytes.len() as c_ulong,
                interval as c_int,
                out,
                len,
                message,
                message_len,
            )
        },
    )
}

/// The bytes a C function writes through `(out, len)` (malloc'd there, freed here after the
/// copy), or the message it writes on failure after `what`.
fn malloced(
    what: &str,
    call: impl FnOnce(*mut *mut u8, *mut c_ulong, *mut c_char, usize) -> c_int,
) -> Result<Vec<u8>> {
    let mut out: *mut u8 = std::ptr::null_mut();
    let mut len: c_ulong = 0;
    let mut message = [0 as c_char; 200];
    if call(&mut out, &mut len, message.as_mut_ptr(), message.len()) != 0 {
        bail!("{what}: {}", text(&message));
    }
    // SAFETY: on success the C side leaves `out` pointing to `len` bytes it allocated (and on
    // failure frees them itself).
    let bytes = unsafe { std::slice::from_raw_parts(out, len as usize) }.to_vec();
    unsafe { nls_jpeg_free(out) };
    Ok(bytes)
}

/// Adobe stores CMYK inverted; Pillow reads it as `CMYK;I` and converts with
/// `R = (255−K) − (255−K)·C/255` (its `MULDIV255` rounding), which on the stored bytes is this.
fn inverted_cmyk_to_rgb(stored: &[u8]) -> Vec<u8> {
    let muldiv255 = |a: u32, b: u32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    let mut rgb = Vec::with_capacity(stored.len() / 4 * 3);
    for px in stored.chunks_exact(4) {
        let nk = u32::from(px[3]);
        for &c in &px[..3] {
            let c = 255 - u32::from(c);
            rgb.push((nk - muldiv255(c, nk)) as u8);
        }
    }
    rgb
}

/// Trailing padding after the marker is common (cameras, some encoders); allow a little.
fn check_complete(bytes: &[u8]) -> Result<()> {
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    ensure!(
        tail.windows(2).any(|w| w == END_OF_IMAGE),
        "truncated JPEG: the end-of-image marker is missing ({} bytes)",
        bytes.len()
    );
    Ok(())
}

fn text(message: &[c_char]) -> String {
    // SAFETY: the C side NUL-terminates within the buffer (snprintf), and it starts zeroed.
    unsafe { CStr::from_ptr(message.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}
