//! Decoding and the reference transforms (`trainer::data::image`) against Python's own:
//! every file that `tests/fixtures/pictures.py` writes (JPEG baseline 4:2:0/4:2:2/4:4:4,
//! progressive, gray, CMYK; PNG RGB/RGBA/gray/palette; WebP lossless and lossy; a JPEG named
//! .png) decodes to Pillow's pixels exactly (both are libjpeg-turbo, libpng's rules, libwebp);
//! a JPEG decoded over a region or at reduced DCT scale equals the same region of Pillow's
//! `draft` decode at that scale, and so does one decoded from the tiles of the file rewritten
//! with restart markers (`pack --encoding tiles`); `RandomResizedCrop`'s resize
//! and flip match torchvision's `resized_crop(antialias=True)` + `hflip` on the same
//! parameters, and `Resize` + `CenterCrop` match torchvision's; bad files are errors that say
//! what is wrong.

mod common;

use common::write_fixtures;
use std::path::{Path, PathBuf};
use trainer::data::image::resize::{Crop, Resampler};
use trainer::data::image::{self, jpeg, tiles, Picture};

/// The fixtures and Pillow's and torchvision's outputs, written into `dir`.
fn fixtures(dir: &Path) -> (PathBuf, serde_json::Value) {
    write_fixtures("pictures.py", dir);
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    (dir.to_path_buf(), serde_json::from_str(&manifest).unwrap())
}

/// Largest and mean absolute difference.
fn differences(ours: &[u8], theirs: &[u8]) -> (u8, f64) {
    assert_eq!(ours.len(), theirs.len(), "sizes differ");
    let diffs = ours.iter().zip(theirs).map(|(&a, &b)| a.abs_diff(b));
    let max = diffs.clone().max().unwrap_or(0);
    let mean = diffs.map(f64::from).sum::<f64>() / ours.len() as f64;
    (max, mean)
}

#[test]
fn decoded_pixels_match_pillow() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, manifest) = fixtures(tmp.path());
    for file in manifest["files"].as_array().unwrap() {
        let name = file["name"].as_str().unwrap();
        let ours = image::read(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let dims = ["height", "width", "channels"].map(|k| file[k].as_u64().unwrap() as usize);
        assert_eq!([ours.height, ours.width, ours.channels], dims, "{name}");
        let theirs = std::fs::read(dir.join(format!("{name}.pixels"))).unwrap();
        let (max, mean) = differences(&ours.pixels, &theirs);
        assert!(
            ours.pixels == theirs,
            "{name}: differs from Pillow by up to {max} (mean {mean:.4})"
        );
    }
}

/// Regions of JPEGs at DCT scales 1, 1/2, 1/4, 1/8 (baseline 4:2:0 and 4:2:2, progressive, gray,
/// CMYK) against the same rectangle of Pillow's `draft` decode: equal. Cutting columns at block
/// edges and skipping rows must not change a pixel of the region.
#[test]
fn regions_match_pillows_draft() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, manifest) = fixtures(tmp.path());
    for d in manifest["drafts"].as_array().unwrap() {
        let bytes = std::fs::read(dir.join(d["name"].as_str().unwrap())).unwrap();
        check_draft(&dir, d, &bytes);
    }
}

/// The same regions of the files rewritten as tiles (`pack --encoding tiles`), decoded from
/// the tiles over each region only, against the same Pillow decodes of the original files:
/// equal. Every JPEG but CMYK is tiled, and the regions of the larger picture are cut from
/// fewer tiles than the whole.
#[test]
fn tiled_regions_match_pillows_draft() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, manifest) = fixtures(tmp.path());
    let mut cut = Vec::new();
    for d in manifest["drafts"].as_array().unwrap() {
        let name = d["name"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let Some(tiled) = tiles::restart_every(&bytes) else {
            assert_eq!(name, "cmyk.jpg", "{name} was not tiled");
            continue;
        };
        let (_, region) = check_draft(&dir, d, &tiled);
        let t = tiles::Tiles::parse(&tiled).unwrap();
        let denom = d["denom"].as_u64().unwrap() as usize;
        let columns = (region.x * denom, (region.x + region.width) * denom);
        let rows = (region.y * denom, (region.y + region.height) * denom);
        if t.cut(columns, rows).is_some() {
            cut.push(name);
        }
    }
    // large.jpg's regions (300×200, tiles of one 16×16 MCU) are each cut; the small files'
    // regions mostly need all their tiles.
    assert_eq!(cut.len(), 7, "regions cut from tiles: {cut:?}");
    assert!(
        cut.iter().filter(|&&n| n == "large.jpg").count() == 6,
        "{cut:?}"
    );
}

/// `bytes` (the file `d` names, or a rewrite of it) decoded over `d`'s region at its scale
/// against Pillow's; the header and region.
fn check_draft(dir: &Path, d: &serde_json::Value, bytes: &[u8]) -> (jpeg::Header, jpeg::Region) {
    let header = jpeg::header(bytes).unwrap();
    let denom = d["denom"].as_u64().unwrap() as usize;
    let region = match d["region"].as_array() {
        Some(_) => {
            let r = numbers(&d["region"]);
            jpeg::Region {
                x: r[0],
                y: r[1],
                width: r[2],
                height: r[3],
            }
        }
        None => jpeg::Region::whole(header, denom),
    };
    let ours = region_of(bytes, header, denom, region);
    let theirs = std::fs::read(dir.join(d["output"].as_str().unwrap())).unwrap();
    let (max, mean) = differences(&ours, &theirs);
    assert!(
        ours == theirs,
        "{d}: differs from Pillow by up to {max} (mean {mean:.4})"
    );
    (header, region)
}

/// `region`'s pixels (at `1/denom`), cut from what the decoder returns for it.
fn region_of(bytes: &[u8], header: jpeg::Header, denom: usize, region: jpeg::Region) -> Vec<u8> {
    let part = jpeg::decode_region(bytes, header, denom, region).unwrap();
    let p = &part.picture;
    assert!(
        part.x <= region.x && part.x + p.width >= region.x + region.width,
        "{region:?} at 1/{denom}: columns {}..{}",
        part.x,
        part.x + p.width
    );
    assert_eq!((part.y, p.height), (region.y, region.height));
    let row = |y: usize| {
        let start = (y * p.width + region.x - part.x) * p.channels;
        &p.pixels[start..start + region.width * p.channels]
    };
    (0..region.height).flat_map(row).copied().collect()
}

/// Random regions of tiled JPEGs (single-MCU tiles of a 4:2:0 picture 19 MCUs wide, 4:4:4,
/// 4:2:2, gray, a progressive original) at every DCT scale, decoded from their tiles, against
/// the same rectangle of the original file decoded whole at that scale (the path the test
/// above checks against Pillow): equal, edges and corners included.
#[test]
fn tiled_regions_equal_the_whole_decode() {
    use rand::{Rng, SeedableRng};
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = fixtures(tmp.path());
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
    for name in [
        "large.jpg",
        "rgb444.jpg",
        "rgb422.jpg",
        "gray.jpg",
        "progressive.jpg",
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let tiled = tiles::restart_every(&bytes).unwrap_or_else(|| panic!("{name}: not tiled"));
        let header = jpeg::header(&bytes).unwrap();
        for denom in jpeg::DENOMS {
            let whole = jpeg::Region::whole(header, denom);
            let (w, h) = (whole.width, whole.height);
            let original = jpeg::decode_region(&bytes, header, denom, whole).unwrap();
            let o = &original.picture;
            for _ in 0..40 {
                let (x, y) = (rng.gen_range(0..w), rng.gen_range(0..h));
                let region = jpeg::Region {
                    x,
                    y,
                    width: rng.gen_range(1..=w - x),
                    height: rng.gen_range(1..=h - y),
                };
                let expected: Vec<u8> = (region.y..region.y + region.height)
                    .flat_map(|r| {
                        let start = (r * o.width + region.x) * o.channels;
                        &o.pixels[start..start + region.width * o.channels]
                    })
                    .copied()
                    .collect();
                let ours = region_of(&tiled, header, denom, region);
                assert!(ours == expected, "{name} at 1/{denom}, {region:?}");
            }
        }
    }
}

fn numbers(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// Our resampling of Pillow's pixels against torchvision's on the same pixels: within 1 grey
/// level everywhere, mean ≤ 0.3 (measured on seeds 0–3: max 1, mean ≤ 0.196; both round a
/// fixed-point or float convolution of PIL's filter). A wrong flip, crop offset or filter
/// width moves many pixels by far more.
#[test]
fn crops_match_torchvision() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, manifest) = fixtures(tmp.path());
    let source = |name: &str| {
        let f = manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap();
        let pixels = std::fs::read(dir.join(format!("{name}.pixels"))).unwrap();
        Picture {
            height: f["height"].as_u64().unwrap() as usize,
            width: f["width"].as_u64().unwrap() as usize,
            channels: 3,
            pixels,
        }
    };
    let check = |what: String, ours: &[u8], output: &serde_json::Value| {
        let theirs = std::fs::read(dir.join(output.as_str().unwrap())).unwrap();
        let (max, mean) = differences(ours, &theirs);
        println!("{what}: max {max}, mean {mean:.4}");
        assert!(max <= 1 && mean <= 0.3, "{what}: max {max}, mean {mean:.4}");
    };
    let mut resampler = Resampler::default();
    for c in manifest["crops"].as_array().unwrap() {
        let (v, size) = (numbers(&c["crop"]), numbers(&c["size"]));
        let crop = Crop {
            top: v[0],
            left: v[1],
            height: v[2],
            width: v[3],
        };
        let flip = c["flip"].as_bool().unwrap();
        let mut out = vec![0; 3 * size[0] * size[1]];
        let src = source(c["name"].as_str().unwrap());
        resampler
            .resized_crop(&src, crop, (size[0], size[1]), flip, &mut out)
            .unwrap();
        check(format!("crop {c}"), &out, &c["output"]);
    }
    for c in manifest["centre"].as_array().unwrap() {
        let (resize, crop) = (c["resize"].as_u64().unwrap(), c["crop"].as_u64().unwrap());
        let mut out = vec![0; 3 * (crop * crop) as usize];
        let src = source(c["name"].as_str().unwrap());
        resampler
            .resize_center_crop(&src, resize as usize, crop as usize, &mut out)
            .unwrap();
        check(format!("centre {c}"), &out, &c["output"]);
    }
}

#[test]
fn bad_files_say_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = fixtures(tmp.path());
    let jpeg = std::fs::read(dir.join("large.jpg")).unwrap();
    let png = std::fs::read(dir.join("rgb.png")).unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("cut.jpg", jpeg[..jpeg.len() / 2].to_vec(), "truncated JPEG"),
        ("cut.png", png[..png.len() / 2].to_vec(), "PNG"),
        (
            "notes.jpg",
            b"just some text".to_vec(),
            "not a JPEG, PNG or WebP",
        ),
        ("empty.jpg", Vec::new(), "empty file"),
    ];
    for (name, bytes, says) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let e = format!("{:#}", image::read(&path).unwrap_err());
        assert!(e.contains(says) && e.contains(name), "{name}: {e}");
    }
}
