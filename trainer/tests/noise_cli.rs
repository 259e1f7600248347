//! `trainer noise` end to end on the real Fashion-MNIST: files, grids, the original JSON form,
//! determinism across thread counts, and clear errors that leave nothing behind.

// Matrix cells are indexed (s, y), as in the formulas they are checked against.
#![allow(clippy::needless_range_loop)]

mod common;

use common::{stderr, trainer, FASHION_MNIST};
use std::path::Path;
use trainer::noise::file::NoiseFile;

fn have_data() -> bool {
    let ok = Path::new(FASHION_MNIST).exists();
    if !ok {
        eprintln!("skipping: {FASHION_MNIST} is missing (scripts/setup.sh installs it)");
    }
    ok
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

#[test]
fn grid_writes_one_checked_file_per_configuration() {
    if !have_data() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("labels");
    let o = trainer(&[
        "noise",
        "--data-dir",
        FASHION_MNIST,
        "--dataset",
        "fashion-mnist",
        "--kind",
        "matrix",
        "--noise",
        "0,0.2,...,0.6",
        "--sparsity",
        "0,0.4",
        "--seeds",
        "0-1",
        "--legacy",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // 4 noise levels × 2 sparsities × 2 seeds, minus the duplicate noise-0 rows.
    let names: Vec<String> = files_in(&out)
        .into_iter()
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(names.len(), 14, "{names:?}");
    assert!(names.contains(&"fashion-mnist-matrix-noise0.6-sparsity0.4-seed1.json".to_string()));
    let f =
        NoiseFile::read(&out.join("fashion-mnist-matrix-noise0.6-sparsity0.4-seed1.json")).unwrap();
    assert_eq!(
        (f.num_samples, f.num_classes, f.noise, f.sparsity, f.seed),
        (60000, 10, Some(0.6), Some(0.4), Some(1))
    );
    assert_eq!(f.class_counts, vec![6000; 10]);
    // Exact-count flipping: realized cell = trunc(nm·p(y)·N) / n_y with p(y)·N = 6000.
    let nm = f.requested_matrix.as_ref().unwrap();
    for s in 0..10 {
        for y in (0..10).filter(|&y| y != s) {
            let count = (nm[s][y] * 0.1 * 60000.0) as usize;
            assert!((f.realized_matrix[s][y] - count as f64 / 6000.0).abs() < 1e-12);
        }
    }
    let diag: f64 = (0..10).map(|i| nm[i][i]).sum();
    assert!((diag - 4.0).abs() < 1e-6, "trace {diag}");
    // The original tools' form holds the same labels, keyed by sample id for IDX data.
    let legacy = out.join("noisy_labels_1/noisylabels_noise0.6_sparsity0.4.json");
    let map: std::collections::HashMap<String, usize> =
        serde_json::from_str(&std::fs::read_to_string(&legacy).unwrap()).unwrap();
    assert_eq!(map.len(), 60000);
    assert!((0..60000).all(|i| map[&i.to_string()] == f.labels[i]));
    assert!(out
        .join("noisy_labels_0/noisylabels_noise0.0_sparsity0.0.json")
        .exists());
    assert!(!out
        .join("noisy_labels_0/noisylabels_noise0.0_sparsity0.4.json")
        .exists());
    // Reading the original form back reproduces our labels.
    let imported = tmp.path().join("imported");
    let o = trainer(&[
        "noise",
        "--data-dir",
        FASHION_MNIST,
        "--import",
        legacy.to_str().unwrap(),
        "--out",
        imported.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let back = NoiseFile::read(
        &imported.join("fashion-mnist-imported-noisylabels_noise0.6_sparsity0.4.json"),
    )
    .unwrap();
    assert_eq!(back.labels, f.labels);
    assert_eq!(back.realized_flip_rate, f.realized_flip_rate);
}

#[test]
fn output_is_identical_across_thread_counts() {
    if !have_data() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for threads in ["1", "2"] {
        let out = tmp.path().join(threads);
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
            .args([
                "noise",
                "--data-dir",
                FASHION_MNIST,
                "--kind",
                "symmetric",
                "--noise",
                "0.3",
                "--seeds",
                "4",
            ])
            .args(["--out", out.to_str().unwrap()])
            .env("OMP_NUM_THREADS", threads)
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        outputs.push(
            std::fs::read(out.join("fashion-mnist-symmetric-any-noise0.3-seed4.json")).unwrap(),
        );
    }
    assert_eq!(outputs[0], outputs[1]);
}

/// Size and distinct colours of a PNG (8-bit RGB, as the plots are written).
fn decode_png(path: &Path) -> ((u32, u32), usize) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let colors: std::collections::HashSet<&[u8]> =
        buf[..info.buffer_size()].chunks_exact(3).collect();
    ((info.width, info.height), colors.len())
}

#[test]
fn plot_writes_the_realized_matrix_beside_each_labels_file() {
    if !have_data() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = |out: &Path, plot: bool| {
        let mut args = vec![
            "noise",
            "--data-dir",
            FASHION_MNIST,
            "--kind",
            "symmetric",
            "--noise",
            "0.2,0.5",
            "--out",
            out.to_str().unwrap(),
        ];
        if plot {
            args.push("--plot");
        }
        let o = trainer(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    let with = tmp.path().join("with");
    run(&with, true);
    assert_eq!(
        files_in(&with),
        vec![
            "fashion-mnist-symmetric-any-noise0.2-seed0.json",
            "fashion-mnist-symmetric-any-noise0.2-seed0.png",
            "fashion-mnist-symmetric-any-noise0.5-seed0.json",
            "fashion-mnist-symmetric-any-noise0.5-seed0.png",
        ]
    );
    for noise in ["0.2", "0.5"] {
        let png = with.join(format!(
            "fashion-mnist-symmetric-any-noise{noise}-seed0.png"
        ));
        let ((w, h), colors) = decode_png(&png);
        assert!(w >= 500 && h >= 500, "{w}x{h}");
        assert!(colors > 20, "{} looks blank", png.display());
    }
    let without = tmp.path().join("without");
    run(&without, false);
    let names = files_in(&without);
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|n| n.ends_with(".json")), "{names:?}");
}

#[test]
fn bad_arguments_fail_clearly_and_write_nothing() {
    if !have_data() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("never");
    let out_s = out.to_str().unwrap();
    let unreadable = tmp.path().join("missing.json");
    let wrong_classes = tmp.path().join("wrong.json");
    // An original-form file for all 60000 images, with one label beyond Fashion-MNIST's 10 classes.
    let map: std::collections::BTreeMap<String, usize> = (0..60000)
        .map(|i| (i.to_string(), if i == 5 { 10 } else { 1 }))
        .collect();
    std::fs::write(&wrong_classes, serde_json::to_string(&map).unwrap()).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--noise", "1.5"], "outside [0, 1]"),
        (vec!["--noise", "0.2,-0.1"], "not a plain decimal"),
        (vec!["--sparsity", "1"], "outside [0, 1)"),
        (vec!["--kind", "gaussian"], "invalid value 'gaussian'"),
        (vec!["--dataset", "mnist2"], "unknown dataset"),
        (vec!["--dataset", "cifar10"], "holds fashion-mnist"),
        (
            vec!["--kind", "symmetric", "--sparsity", "0.2"],
            "applies only to --kind matrix",
        ),
        (
            vec!["--kind", "matrix", "--valid", "--noise", "0.9"],
            "trace > 1",
        ),
        (
            vec!["--kind", "matrix", "--convention", "other"],
            "--convention applies only to --kind symmetric",
        ),
        (
            vec!["--seeds", "0-10000"],
            "would write 10001 files (10001 configurations × 1), more than 10000",
        ),
        (
            vec!["--seeds", "0-4999", "--legacy", "--plot"],
            "would write 15000 files",
        ),
        (
            vec!["--import", unreadable.to_str().unwrap()],
            "missing.json",
        ),
        (
            vec!["--import", wrong_classes.to_str().unwrap()],
            "not below the class count 10",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["noise", "--data-dir", FASHION_MNIST, "--out", out_s];
        args.extend(&extra);
        let o = trainer(&args);
        let err = stderr(&o);
        assert!(!o.status.success(), "{extra:?} succeeded");
        assert!(
            err.to_lowercase().contains(&needle.to_lowercase()),
            "{extra:?}: message was {err}"
        );
        assert!(!out.exists(), "{extra:?} left output behind");
    }
    let o = trainer(&[
        "noise",
        "--data-dir",
        tmp.path().to_str().unwrap(),
        "--out",
        out_s,
    ]);
    assert!(!o.status.success());
    assert!(!out.exists());
}

/// CIFAR-10N files as published (torch.save zip and np.save object array), written by the venv's
/// torch and numpy for a small CIFAR-10 made by the fixture script.
#[test]
fn cifar_n_label_sets_import_from_pt_and_npy() {
    let tmp = tempfile::tempdir().unwrap();
    let script = common::workspace_root().join("tests/fixtures/make_datasets.py");
    let o = std::process::Command::new(common::python())
        .arg(&script)
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("expected.json")).unwrap())
            .unwrap();
    let data = std::path::PathBuf::from(expected["cifar10-binary"]["path"].as_str().unwrap());
    let clean = expected["cifar10-binary"]["train"]["labels"].to_string();
    let code = r#"
import json, sys, numpy as np, torch
clean = np.array(json.loads(sys.argv[1])); out = sys.argv[2]
rng = np.random.default_rng(5)
d = {"clean_label": clean, "worse_label": rng.integers(0, 10, len(clean)), "aggre_label": rng.integers(0, 10, len(clean))}
torch.save(d, out + "/CIFAR-10_human.pt")
np.save(out + "/CIFAR-10_human.npy", d, allow_pickle=True)
d["clean_label"] = (clean + 1) % 10
torch.save(d, out + "/other.pt")
print(json.dumps(d["worse_label"].tolist()))
"#;
    let worse: Vec<usize> = serde_json::from_str(&common::run_python(
        code,
        &[&clean, tmp.path().to_str().unwrap()],
    ))
    .unwrap();
    let import = |file: &Path, set: &str, out: &Path| {
        let [d, f, o] = [data.as_path(), file, out].map(|p| p.to_str().unwrap().to_string());
        trainer(&[
            "noise",
            "--data-dir",
            &d,
            "--import",
            &f,
            "--label-set",
            set,
            "--out",
            &o,
        ])
    };
    for ext in ["pt", "npy"] {
        let out = tmp.path().join(format!("out-{ext}"));
        let o = import(
            &tmp.path().join(format!("CIFAR-10_human.{ext}")),
            "worse",
            &out,
        );
        assert!(o.status.success(), "{ext}: {}", stderr(&o));
        let f = NoiseFile::read(&out.join("cifar10-imported-CIFAR-10_human-worse.json")).unwrap();
        assert_eq!(f.labels, worse, "{ext}");
        assert!(f.source.unwrap().contains("(worse)"));
    }
    let out = tmp.path().join("never");
    let other = tmp.path().join("other.pt");
    for (set, needle) in [
        ("aggre", "another dataset"),
        ("random9", "unknown --label-set"),
    ] {
        let o = import(&other, set, &out);
        assert!(
            !o.status.success() && stderr(&o).contains(needle),
            "{}",
            stderr(&o)
        );
    }
    assert!(!out.exists());
}

fn noise_into(out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "noise",
        "--data-dir",
        FASHION_MNIST,
        "--noise",
        "0.4",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    trainer(&args)
}

/// The original form's name has no kind: a symmetric file and a matrix file of the same rate
/// were both `noisylabels_noise0.4_sparsity0.json`, the second silently replacing the first.
#[test]
fn legacy_files_of_different_kinds_keep_distinct_names() {
    if !have_data() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("labels");
    for kind in ["symmetric", "matrix"] {
        let o = noise_into(&out, &["--kind", kind, "--legacy"]);
        assert!(o.status.success(), "{kind}: {}", stderr(&o));
    }
    let seed_dir = out.join("noisy_labels_0");
    assert_eq!(
        files_in(&seed_dir),
        [
            "noisylabels_noise0.4_sparsity0.0.json",
            "noisylabels_symmetric-any_noise0.4.json"
        ]
    );
    // Each original-form file holds its own kind's labels (keys are the sample ids).
    for (legacy, ours) in [
        (
            "noisylabels_symmetric-any_noise0.4.json",
            "fashion-mnist-symmetric-any-noise0.4-seed0.json",
        ),
        (
            "noisylabels_noise0.4_sparsity0.0.json",
            "fashion-mnist-matrix-noise0.4-sparsity0.0-seed0.json",
        ),
    ] {
        let map: std::collections::HashMap<String, usize> =
            serde_json::from_slice(&std::fs::read(seed_dir.join(legacy)).unwrap()).unwrap();
        let labels = NoiseFile::read(&out.join(ours)).unwrap().labels;
        assert_eq!(map.len(), labels.len());
        assert!(
            labels
                .iter()
                .enumerate()
                .all(|(i, &l)| map[&i.to_string()] == l),
            "{legacy}"
        );
    }
}

/// A rerun that produces the same bytes is fine; a file with other content is never replaced
/// without --force, and the refusal writes nothing at all.
#[test]
fn existing_files_with_other_content_are_replaced_only_with_force() {
    if !have_data() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("labels");
    let args = ["--kind", "symmetric", "--seeds", "0,1"];
    assert!(noise_into(&out, &args).status.success());
    let first = out.join("fashion-mnist-symmetric-any-noise0.4-seed0.json");
    let second = out.join("fashion-mnist-symmetric-any-noise0.4-seed1.json");
    let original = std::fs::read(&first).unwrap();
    let o = noise_into(&out, &args);
    assert!(o.status.success(), "an identical rerun: {}", stderr(&o));
    std::fs::write(&first, b"someone else's labels").unwrap();
    std::fs::remove_file(&second).unwrap();
    let o = noise_into(&out, &args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("1 existing file(s) would be replaced"),
        "{err}"
    );
    assert!(err.contains("seed0.json"), "{err}");
    assert!(err.contains("add --force"), "{err}");
    assert_eq!(std::fs::read(&first).unwrap(), b"someone else's labels");
    assert!(!second.exists(), "the refused run wrote seed 1");
    let mut forced = args.to_vec();
    forced.push("--force");
    assert!(noise_into(&out, &forced).status.success());
    assert_eq!(std::fs::read(&first).unwrap(), original);
}
