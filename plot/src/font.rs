//! The font: DejaVu Sans read once at run time. Text is drawn by [`crate::canvas`] with
//! `ab_glyph`; the faces are also registered with plotters as the "sans-serif" family so that its
//! font descriptions resolve.

use ab_glyph::FontRef;
use anyhow::{bail, Context, Result};
use plotters::style::{register_font, FontStyle};
use std::path::Path;
use std::sync::OnceLock;

/// The regular face; Debian package `fonts-dejavu-core` (scripts/setup.sh installs it).
pub const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// The bold face from the same package; the regular face stands in when it is missing.
const BOLD_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf";

pub struct Fonts {
    regular: FontRef<'static>,
    bold: FontRef<'static>,
}

impl Fonts {
    pub fn face(&self, bold: bool) -> &FontRef<'static> {
        if bold {
            &self.bold
        } else {
            &self.regular
        }
    }
}

static FONTS: OnceLock<Result<Fonts, String>> = OnceLock::new();

/// The fonts, loaded on first use; later calls return the first outcome.
pub fn fonts() -> Result<&'static Fonts> {
    match FONTS.get_or_init(|| load_all().map_err(|e| format!("{e:#}"))) {
        Ok(f) => Ok(f),
        Err(e) => bail!("{e}"),
    }
}

fn load_all() -> Result<Fonts> {
    let regular_bytes = read(Path::new(FONT_PATH))?;
    let bold_bytes = read(Path::new(BOLD_PATH)).unwrap_or(regular_bytes);
    let parse = |bytes: &'static [u8], path: &str| {
        FontRef::try_from_slice(bytes)
            .ok()
            .with_context(|| format!("{path} is not a usable TrueType font"))
    };
    let fonts = Fonts {
        regular: parse(regular_bytes, FONT_PATH)?,
        bold: parse(bold_bytes, BOLD_PATH)?,
    };
    register_font("sans-serif", FontStyle::Normal, regular_bytes)
        .ok()
        .with_context(|| format!("{FONT_PATH} is not a usable TrueType font"))?;
    register_font("sans-serif", FontStyle::Bold, bold_bytes)
        .ok()
        .with_context(|| format!("{BOLD_PATH} is not a usable TrueType font"))?;
    Ok(fonts)
}

/// Read a font file and keep it for the life of the process (plotters needs `'static` bytes).
fn read(path: &Path) -> Result<&'static [u8]> {
    if !path.exists() {
        bail!(
            "the plot font {} is missing: install it with `apt-get install fonts-dejavu-core` \
             (scripts/setup.sh does this)",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading font {}", path.display()))?;
    Ok(Box::leak(bytes.into_boxed_slice()))
}
