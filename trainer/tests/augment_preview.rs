//! `trainer augment-preview` end to end on the real Fashion-MNIST: the PNG's layout, the
//! original cells against the IDX file read independently, determinism, and argument errors.

mod common;

use flate2::read::GzDecoder;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;

const SIDE: usize = 28;
const GUTTER: usize = 2;

/// Run `augment-preview` on Fashion-MNIST writing `<dir>/<name>`, with `extra` arguments.
fn preview(dir: &Path, name: &str, extra: &[&str]) -> (Output, PathBuf) {
    let out = dir.join(name);
    let mut args = vec![
        "augment-preview",
        "--data-dir",
        common::FASHION_MNIST,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    (common::trainer(&args), out)
}

fn ok(out: &Output) {
    assert!(out.status.success(), "{}", common::stderr(out));
}

struct Decoded {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Decoded {
    /// The RGB bytes of the `side`-pixel cell at (`row`, `col`), row-major.
    fn cell(&self, row: usize, col: usize, side: usize) -> Vec<u8> {
        let (top, left) = (row * (side + GUTTER), col * (side + GUTTER));
        (top..top + side)
            .flat_map(|y| {
                let start = (y * self.width + left) * 3;
                self.rgb[start..start + side * 3].to_vec()
            })
            .collect()
    }
}

fn decode(path: &Path) -> Decoded {
    let decoder = png::Decoder::new(File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    Decoded {
        width: info.width as usize,
        height: info.height as usize,
        rgb: buf,
    }
}

/// The first `n` training images, parsed from the gzipped IDX file here rather than through
/// the trainer's reader: magic 0x00000803, then count, rows, cols (big-endian u32), then pixels.
fn idx_images(n: usize) -> Vec<Vec<u8>> {
    let path = Path::new(common::FASHION_MNIST).join("train-images-idx3-ubyte.gz");
    let mut gz = GzDecoder::new(File::open(path).unwrap());
    let mut header = [0u8; 16];
    gz.read_exact(&mut header).unwrap();
    let word = |i: usize| u32::from_be_bytes(header[4 * i..4 * i + 4].try_into().unwrap());
    assert_eq!(word(0), 0x0803);
    assert_eq!((word(2), word(3)), (SIDE as u32, SIDE as u32));
    (0..n)
        .map(|_| {
            let mut img = vec![0u8; SIDE * SIDE];
            gz.read_exact(&mut img).unwrap();
            img
        })
        .collect()
}

/// A gray image upscaled by nearest neighbour and repeated to RGB, as the grid shows it.
fn upscaled_rgb(gray: &[u8], scale: usize) -> Vec<u8> {
    let side = SIDE * scale;
    (0..side * side)
        .flat_map(|i| {
            let v = gray[(i / side / scale) * SIDE + (i % side) / scale];
            [v, v, v]
        })
        .collect()
}

#[test]
fn grid_layout_and_original_cells() {
    let dir = tempfile::tempdir().unwrap();
    let (images, views, scale) = (5, 3, 2);
    let (out, path) = preview(
        dir.path(),
        "grid.png",
        &["--images", "5", "--views", "3", "--scale", "2"],
    );
    ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("grid.png"), "{stdout}");

    let png = decode(&path);
    let cell = SIDE * scale;
    let cols = 1 + views;
    assert_eq!(png.width, cols * cell + (cols - 1) * GUTTER);
    assert_eq!(png.height, images * cell + (images - 1) * GUTTER);
    assert!(
        stdout.contains(&format!("{}×{}", png.width, png.height)),
        "{stdout}"
    );

    for (row, gray) in idx_images(images).iter().enumerate() {
        let original = png.cell(row, 0, cell);
        assert!(
            original == upscaled_rgb(gray, scale),
            "row {row}: original differs"
        );
        for col in 1..cols {
            assert_ne!(png.cell(row, col, cell), original, "row {row} view {col}");
        }
    }
    // The gutter column after the first cell is white from top to bottom.
    for y in 0..png.height {
        for x in cell..cell + GUTTER {
            let p = (y * png.width + x) * 3;
            assert_eq!(&png.rgb[p..p + 3], &[255, 255, 255], "gutter at ({x}, {y})");
        }
    }
}

#[test]
fn same_seed_same_bytes_other_seed_or_epoch_differs() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let mut args = vec!["--images", "3", "--views", "2"];
        args.extend_from_slice(extra);
        let (out, path) = preview(dir.path(), name, &args);
        ok(&out);
        std::fs::read(path).unwrap()
    };
    let a = run("a.png", &["--seed", "7"]);
    let b = run("b.png", &["--seed", "7"]);
    let c = run("c.png", &["--seed", "8"]);
    let d = run("d.png", &["--seed", "7", "--epoch", "1"]);
    assert_eq!(a, b, "same seed, different bytes");
    assert_ne!(a, c, "seeds 7 and 8 gave the same grid");
    assert_ne!(a, d, "epochs 0 and 1 gave the same grid");
}

#[test]
fn config_augment_table_sets_the_size() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("run.toml");
    // Keys outside [augment] belong to pretraining and are ignored here.
    std::fs::write(
        &config,
        "epochs = 3\n[model]\nwhatever = 1\n[augment]\nsize = 20\nsolarize_p = 1.0\n",
    )
    .unwrap();
    let (out, path) = preview(
        dir.path(),
        "grid.png",
        &[
            "--images",
            "2",
            "--views",
            "1",
            "--scale",
            "1",
            "--method",
            "vicreg",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    ok(&out);
    let png = decode(&path);
    assert_eq!((png.width, png.height), (2 * 20 + GUTTER, 2 * 20 + GUTTER));
}

/// The files in `dir` other than `keep`: a failed run must leave nothing (no temp file either).
fn leftovers(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !keep.contains(&name.as_str()))
        .collect()
}

#[test]
fn bad_arguments_fail_with_a_message_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "a file where a folder is expected").unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[augment]\nsise = 24\n").unwrap();
    let missing = dir.path().join("no-such-data");
    let keep = ["blocker", "bad.toml"];

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--images", "0"], "--images must be at least 1"),
        (vec!["--images", "60001"], "--images 60001"),
        (vec!["--views", "0"], "--views must be at least 1"),
        (vec!["--scale", "0"], "--scale"),
        (vec!["--config", config.to_str().unwrap()], "sise"),
        (vec!["--method", "byol"], "byol"),
    ];
    for (extra, expected) in cases {
        let (out, path) = preview(dir.path(), "grid.png", &extra);
        let err = common::stderr(&out);
        assert!(!out.status.success(), "{extra:?} succeeded");
        assert!(err.contains(expected), "{extra:?}: {err}");
        assert!(!path.exists(), "{extra:?} left {}", path.display());
        assert_eq!(
            leftovers(dir.path(), &keep),
            Vec::<String>::new(),
            "{extra:?}"
        );
    }

    let out = common::trainer(&[
        "augment-preview",
        "--data-dir",
        missing.to_str().unwrap(),
        "--out",
        dir.path().join("grid.png").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains("no-such-data"),
        "{}",
        common::stderr(&out)
    );
    assert_eq!(leftovers(dir.path(), &keep), Vec::<String>::new());

    // Unwritable: the output's folder is a regular file.
    let (out, path) = preview(&blocker, "grid.png", &["--images", "1", "--views", "1"]);
    let err = common::stderr(&out);
    assert!(!out.status.success(), "writing under a file succeeded");
    assert!(err.contains("grid.png"), "{err}");
    assert!(!path.exists());
    assert_eq!(leftovers(dir.path(), &keep), Vec::<String>::new());
}
