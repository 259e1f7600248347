//! Restart markers as tiles. A baseline JPEG whose scan restarts every few MCUs, each row of
//! MCUs split into whole intervals, is a grid of tiles coded independently of one another: the
//! bytes of the tiles over a rectangle, under the file's own header with the frame's size set
//! to theirs, are a JPEG of that rectangle. Its pixels equal the whole image's one MCU in from
//! every cut edge (there the chroma upsampling sees the same neighbours), so a crop is
//! entropy-decoded only over its tiles; libjpeg must otherwise Huffman-decode every row above a
//! crop, JPEG having no other index into its coded data. `trainer pack --encoding tiles`
//! writes such files losslessly ([`restart_every`]); files from elsewhere that happen to be laid
//! out so are read the same way.

use super::jpeg;

/// The widest tile `trainer pack --encoding tiles` writes, in pixels: narrower tiles fit a
/// crop closer and cost a marker each (two bytes and the padding to a byte).
pub const TILE_SIDE: usize = 32;

/// A frame header's size and MCU, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Frame {
    width: usize,
    height: usize,
    mcu_width: usize,
    mcu_height: usize,
    /// Offset of the height field (the width follows it).
    size_at: usize,
    components: usize,
}

impl Frame {
    fn mcus_per_row(&self) -> usize {
        self.width.div_ceil(self.mcu_width)
    }

    fn mcu_rows(&self) -> usize {
        self.height.div_ceil(self.mcu_height)
    }
}

/// A tiled JPEG's layout: where each tile's coded bytes are.
#[derive(Debug)]
pub struct Tiles<'a> {
    bytes: &'a [u8],
    frame: Frame,
    /// MCUs per tile: the restart interval.
    interval: usize,
    /// Where the coded data starts: the header ends.
    data_start: usize,
    /// Each tile's coded bytes, row by row, without the marker that ends it.
    spans: Vec<(usize, usize)>,
}

/// A JPEG of part of an image: its top-left pixel is (`x`, `y`) of the whole.
pub struct Cut {
    pub bytes: Vec<u8>,
    pub x: usize,
    pub y: usize,
}

/// A marker segment: its code and the bytes after its length field.
struct Segment {
    code: u8,
    at: usize,
    end: usize,
}

/// The marker segments up to and including the start of scan; `None` for anything unusual
/// (fill bytes, a marker without a length), which then decodes the ordinary way.
fn segments(bytes: &[u8]) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    let mut at = 2;
    loop {
        let (marker, code) = (*bytes.get(at)?, *bytes.get(at + 1)?);
        let standalone = (0xD0..=0xD9).contains(&code);
        if marker != 0xFF || code < 0xC0 || code == 0xFF || standalone {
            return None;
        }
        let end = at + 2 + be16(bytes, at + 2)?;
        if end > bytes.len() {
            return None;
        }
        out.push(Segment {
            code,
            at: at + 4,
            end,
        });
        if code == 0xDA {
            return Some(out);
        }
        at = end;
    }
}

/// The big-endian 16-bit number at `at`.
fn be16(bytes: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([
        *bytes.get(at)?,
        *bytes.get(at + 1)?,
    ])))
}

/// The frame of a baseline or extended sequential 8-bit JPEG (SOF0 or SOF1).
fn frame(bytes: &[u8], segment: &Segment) -> Option<Frame> {
    let f = bytes.get(segment.at..segment.end)?;
    let components = usize::from(*f.get(5)?);
    if f[0] != 8 || components == 0 || f.len() < 6 + 3 * components {
        return None;
    }
    let factors = (0..components).map(|c| f[6 + 3 * c + 1]);
    let (h, v) = factors.fold((1, 1), |(h, v), s| {
        (h.max(usize::from(s >> 4)), v.max(usize::from(s & 15)))
    });
    // A lone component's scan is not interleaved: its MCU is one block.
    let (h, v) = if components == 1 { (1, 1) } else { (h, v) };
    let frame = Frame {
        height: be16(f, 1)?,
        width: be16(f, 3)?,
        mcu_width: 8 * h,
        mcu_height: 8 * v,
        size_at: segment.at + 1,
        components,
    };
    (frame.width > 0 && frame.height > 0).then_some(frame)
}

impl<'a> Tiles<'a> {
    /// The tiles of `bytes`, when it is one interleaved baseline scan restarting at whole
    /// fractions of a row of MCUs with the markers in order; `None` otherwise.
    pub fn parse(bytes: &'a [u8]) -> Option<Tiles<'a>> {
        let segments = segments(bytes)?;
        let (mut found, mut interval) = (None, 0);
        for s in &segments {
            match s.code {
                0xC0 | 0xC1 => found = Some(frame(bytes, s)?),
                0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return None,
                0xDD => interval = be16(bytes, s.at)?,
                _ => {}
            }
        }
        let (frame, scan) = (found?, segments.last()?);
        let per_row = frame.mcus_per_row();
        let one_scan = usize::from(*bytes.get(scan.at)?) == frame.components;
        if !one_scan || interval == 0 || !per_row.is_multiple_of(interval) {
            return None;
        }
        let spans = spans(bytes, scan.end)?;
        let expected = per_row / interval * frame.mcu_rows();
        (spans.len() == expected).then_some(Tiles {
            bytes,
            frame,
            interval,
            data_start: scan.end,
            spans,
        })
    }

    /// A JPEG of the tiles over columns `[left, right)` and rows `[top, bottom)` (full-scale
    /// pixels) and one MCU around them; `None` when that is the whole image.
    pub fn cut(&self, (left, right): (usize, usize), (top, bottom): (usize, usize)) -> Option<Cut> {
        let f = &self.frame;
        let tile_width = self.interval * f.mcu_width;
        let per_row = f.mcus_per_row() / self.interval;
        let columns = (
            left.saturating_sub(f.mcu_width) / tile_width,
            (right + f.mcu_width).div_ceil(tile_width).min(per_row),
        );
        let rows = (
            top.saturating_sub(f.mcu_height) / f.mcu_height,
            (bottom + f.mcu_height)
                .div_ceil(f.mcu_height)
                .min(f.mcu_rows()),
        );
        if columns == (0, per_row) && rows == (0, f.mcu_rows()) {
            return None;
        }
        let (x, y) = (columns.0 * tile_width, rows.0 * f.mcu_height);
        let width = (columns.1 * tile_width).min(f.width) - x;
        let height = (rows.1 * f.mcu_height).min(f.height) - y;
        let mut bytes = Vec::with_capacity(self.bytes.len());
        bytes.extend_from_slice(&self.bytes[..self.data_start]);
        bytes[f.size_at..f.size_at + 2].copy_from_slice(&(height as u16).to_be_bytes());
        bytes[f.size_at + 2..f.size_at + 4].copy_from_slice(&(width as u16).to_be_bytes());
        let chosen = (rows.0..rows.1).flat_map(|r| (columns.0..columns.1).map(move |c| (r, c)));
        for (n, (r, c)) in chosen.enumerate() {
            if n > 0 {
                bytes.extend([0xFF, 0xD0 + ((n - 1) % 8) as u8]);
            }
            let (start, end) = self.spans[r * per_row + c];
            bytes.extend_from_slice(&self.bytes[start..end]);
        }
        bytes.extend(jpeg::END_OF_IMAGE);
        Some(Cut { bytes, x, y })
    }
}

/// The coded bytes between restart markers from `start` to the end of image; `None` if a
/// marker is out of order or another marker interrupts the scan.
fn spans(bytes: &[u8], start: usize) -> Option<Vec<(usize, usize)>> {
    let (mut spans, mut from, mut at) = (Vec::new(), start, start);
    loop {
        let ff = at + memchr::memchr(0xFF, bytes.get(at..)?)?;
        match *bytes.get(ff + 1)? {
            0x00 => at = ff + 2,
            code @ 0xD0..=0xD7 if usize::from(code - 0xD0) == spans.len() % 8 => {
                spans.push((from, ff));
                (from, at) = (ff + 2, ff + 2);
            }
            0xD9 => {
                spans.push((from, ff));
                return Some(spans);
            }
            _ => return None,
        }
    }
}

/// The restart interval that makes tiles of at most [`TILE_SIDE`] pixels (whole fractions of
/// a row of MCUs) in the JPEG `bytes` rewritten; `None` unless it is an 8-bit baseline,
/// extended or progressive JPEG.
fn interval_for(bytes: &[u8]) -> Option<usize> {
    let frame = segments(bytes)?
        .iter()
        .filter(|s| matches!(s.code, 0xC0..=0xC2))
        .find_map(|s| frame(bytes, s))?;
    Some(interval(frame.width, frame.mcu_width))
}

/// The restart interval, in MCUs of `mcu_width` pixels, that cuts rows `width` pixels wide into
/// the widest whole tiles of at most [`TILE_SIDE`] pixels.
pub fn interval(width: usize, mcu_width: usize) -> usize {
    let per_row = width.div_ceil(mcu_width).max(1);
    let widest = (TILE_SIDE / mcu_width).max(1);
    (1..=widest.min(per_row))
        .rev()
        .find(|&t| per_row.is_multiple_of(t))
        .unwrap_or(1)
}

/// `bytes` rewritten losslessly as tiles, if it is a JPEG that can be and its pixels come out
/// the same (checked by decoding both whole); `None` for anything else, which is then stored
/// as it is.
pub fn restart_every(bytes: &[u8]) -> Option<Vec<u8>> {
    let interval = interval_for(bytes)?;
    let original = jpeg::decode(bytes).ok()?;
    let tiled = jpeg::restart(bytes, interval).ok()?;
    let same = Tiles::parse(&tiled).is_some() && jpeg::decode(&tiled).ok()? == original;
    same.then_some(tiled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-derived: 500 px at 4:2:0 is 32 MCUs of 16, cut into 16 tiles of 2 (32 px); 300 px
    /// is 19 MCUs, prime, so one MCU a tile; gray 64 px is 8 blocks of 8, 2 tiles of 4 (32 px);
    /// a picture narrower than a tile is one tile.
    #[test]
    fn tiles_are_the_widest_whole_fraction_of_a_row() {
        assert_eq!(interval(500, 16), 2);
        assert_eq!(interval(300, 16), 1);
        assert_eq!(interval(64, 8), 4);
        assert_eq!(interval(20, 8), 3);
        assert_eq!(interval(10, 16), 1);
    }
}
