//! Presets: `[[paper]]` numbers (checked against the grid, shown by `report` beside ours) and
//! the `[smoke]` scale (`run FILE --smoke`); every preset of experiments/ passes the trainer's
//! check at both scales, and the Meta-Weight-Net, Clothing1M and SSR Clothing1M presets run end
//! to end at smoke scale.

mod common;
mod runs;

use launcher::config::{Experiment, JobArgs, Scale};
use launcher::smoke::set_flag;
use launcher::sweep;
use runs::{nls, read, text};
use std::path::{Path, PathBuf};

const HEAD: &str = "command = [\"train\", \"--epochs\", \"100\", \"--lr-head=0.1\", \"--nesterov\", \"--wd\", \"1e-4\"]\n\
                    [job]\nexp_dir = \"runs/p\"\ncpus_per_task = 8\n";
const GRID: &str = "[[grid]]\nmethod = [\"none\"]\nnoise = [0.2, 0.8]\nseed = [0, 1, 2]\n\
                    [[grid]]\nmethod = [\"mwn\"]\nnoise = [0.8]\nseed = [0, 1, 2]\n";

fn load(text: &str, scale: Scale) -> anyhow::Result<Experiment> {
    let dir = tempfile::tempdir().unwrap();
    let file = common::write(dir.path(), "preset.toml", text);
    let flags = JobArgs {
        trainer: Some("trainer".into()),
        ..JobArgs::default()
    };
    Experiment::load_at(Some(&file), &flags, &[], scale)
}

/// The error of loading `text` at `scale`, which must contain every one of `parts`.
fn refused(text: &str, scale: Scale, parts: &[&str]) {
    let msg = match load(text, scale) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => format!("{e:#}"),
    };
    for p in parts {
        assert!(msg.contains(p), "{p:?} not in: {msg}");
    }
}

fn paper(cell: &str) -> String {
    format!("[[paper]]\nsource = \"Shu 2019\"\ncell = {cell}\nvalue = 91.5\n")
}

#[test]
fn paper_numbers_are_checked_against_the_grid() {
    let ok = load(
        &format!("{HEAD}{GRID}{}", paper("{ method = \"mwn\", noise = 0.8 }")),
        Scale::Full,
    )
    .unwrap();
    assert_eq!(ok.paper.len(), 1);
    assert_eq!(ok.paper[0].metric, "acc1", "acc1 unless the entry says");
    // What the entry says is validated, and the error names the entry and the key.
    let cases: [(String, &[&str]); 7] = [
        (
            format!(
                "{HEAD}{GRID}[[paper]]\nsource = \"S\"\ncell = {{ noise = 0.8 }}\nvaleu = 1.0\n"
            ),
            &["[[paper]] entry 1", "unknown field `valeu`"],
        ),
        (
            format!("{HEAD}{GRID}{}", paper("{ loss = \"ce\" }")),
            &[
                "entry 1 (Shu 2019)",
                "`cell` key `loss` is not a key of the grid",
                "method, noise, seed",
            ],
        ),
        (
            format!("{HEAD}{GRID}{}", paper("{ noise = 0.4 }")),
            &[
                "`cell` noise = 0.4 is not a value of the grid's `noise`",
                "its values: 0.2, 0.8",
            ],
        ),
        (
            // Each value is in the grid, but mwn runs only at 0.8 ([[grid]] tables are joined).
            format!("{HEAD}{GRID}{}", paper("{ method = \"mwn\", noise = 0.2 }")),
            &["no configuration of the grid has all of `cell`'s values together"],
        ),
        (
            format!(
                "{HEAD}{GRID}{}{}",
                paper("{ noise = 0.8, method = \"mwn\" }"),
                paper("{ method = \"mwn\", noise = 0.8 }")
            ),
            &["entry 2", "the same cell and metric as entry 1"],
        ),
        (
            format!("{HEAD}{}", paper("{ noise = 0.8 }")),
            &["the file has no [grid]"],
        ),
        (
            format!(
                "{HEAD}{GRID}[[paper]]\nsource = \" \"\ncell = {{ noise = 0.8 }}\nvalue = 1.0\n"
            ),
            &["`source` is empty"],
        ),
    ];
    for (text, parts) in &cases {
        refused(text, Scale::Full, parts);
    }
}

const SMOKE: &str = "[smoke]\njob = { cpu = true }\n\
                     args = { epochs = 1, lr_head = 0.5, nesterov = false, width = 4 }\n\
                     grid = { noise = [0.8], seed = [0] }\n";

#[test]
fn smoke_scale_overrides_flags_trims_the_grid_and_drops_the_paper() {
    let text = format!(
        "{HEAD}{GRID}{SMOKE}{}",
        paper("{ method = \"mwn\", noise = 0.8 }")
    );
    let full = load(&text, Scale::Full).unwrap();
    let smoke = load(&text, Scale::Smoke).unwrap();
    assert_eq!(
        smoke.job.command,
        [
            "train",
            "--epochs",
            "1",
            "--lr-head=0.5",
            "--nesterov",
            "false",
            "--wd",
            "1e-4",
            "--width",
            "4"
        ]
    );
    assert!(smoke.job.cpu && !full.job.cpu);
    assert_eq!(smoke.job.exp_dir.file_name().unwrap(), "p-smoke");
    assert_eq!(full.job.exp_dir.file_name().unwrap(), "p");
    assert!(smoke.paper.is_empty() && full.paper.len() == 1);
    let names = |e: &Experiment| -> Vec<String> {
        let points = sweep::expand(&sweep::parse_grids(e.grid.as_ref().unwrap(), "f").unwrap());
        points.unwrap().iter().map(|p| p.name()).collect()
    };
    // CE at 0.8 and MW-Net at 0.8 (CE's 0.2 and the other seeds trimmed).
    assert_eq!(
        names(&smoke),
        ["method_none-noise0.8-seed0", "method_mwn-noise0.8-seed0"]
    );
    assert_eq!(names(&full).len(), 9);
    // [smoke.job] may name its own exp-dir, and errors say a key came from there.
    let named = text.replace(
        "job = { cpu = true }",
        "job = { cpu = true, exp_dir = \"ci\" }",
    );
    assert_eq!(
        load(&named, Scale::Smoke)
            .unwrap()
            .job
            .exp_dir
            .file_name()
            .unwrap(),
        "ci"
    );
    let zero = text.replace("job = { cpu = true }", "job = { nodes = 0 }");
    refused(
        &zero,
        Scale::Smoke,
        &["`nodes` in [smoke.job] of", "preset.toml", "at least 1"],
    );
}

#[test]
fn bad_smoke_tables_are_refused_naming_the_key() {
    let cases: [(&str, &[&str]); 6] = [
        (
            "[smoke]\nargz = {}\n",
            &["unknown key `argz` in [smoke]", "job, args, grid"],
        ),
        (
            "[smoke]\njob = { gpus = 1 }\n",
            &["`gpus` in [smoke.job] is not a job key"],
        ),
        (
            "[smoke]\njob = { command = [\"x\"] }\n",
            &["`command` in [smoke.job]", "[smoke.args]"],
        ),
        (
            "[smoke]\nargs = { noise = 0.4 }\n",
            &[
                "[smoke.args] key `noise` is a key of the grid",
                "[smoke.grid]",
            ],
        ),
        (
            "[smoke]\ngrid = { sparsity = [0.2] }\n",
            &[
                "[smoke.grid] key `sparsity` is not a key of the grid",
                "method, noise, seed",
            ],
        ),
        (
            "[smoke]\ngrid = { seed = [] }\n",
            &["[smoke.grid] key `seed` must be a non-empty list"],
        ),
    ];
    for (smoke, parts) in cases {
        refused(&format!("{HEAD}{GRID}{smoke}"), Scale::Smoke, parts);
    }
    refused(
        &format!("{HEAD}{GRID}[smoke]\nargs = {{ exp_dir = \"x\" }}\n"),
        Scale::Full,
        &["[smoke.args] key `exp_dir`", "[smoke.job]"],
    );
    refused(
        &format!("{HEAD}{GRID}"),
        Scale::Smoke,
        &["has no [smoke] table", "experiments/README.md"],
    );
}

#[test]
fn set_flag_replaces_gives_a_value_or_appends() {
    let args = |s: &str| -> Vec<String> { s.split_whitespace().map(String::from).collect() };
    let cases = [
        ("--a 1 --b 2", "--a", "5", "--a 5 --b 2"),
        ("--a=1 --b 2", "--a", "5", "--a=5 --b 2"),
        ("--a --b 2", "--a", "false", "--a false --b 2"),
        ("--b 2 --a", "--a", "false", "--b 2 --a false"),
        ("--b 2", "--a", "-1", "--b 2 --a -1"),
        ("--ab 2", "--a", "5", "--ab 2 --a 5"),
    ];
    for (before, flag, value, after) in cases {
        let mut a = args(before);
        set_flag(&mut a, flag, value);
        assert_eq!(a, args(after), "{before} with {flag} {value}");
    }
}

/// A finished sweep as nls-launch leaves it: job.toml (with `extra` after the grid) and a
/// hand-written results.json per run with the given top-1 accuracy.
fn finished_sweep(d: &Path, extra: &str, runs: &[(&str, f64)]) {
    let job = format!(
        "[job]\nexp_dir = \"exp\"\ncommand = [\"train\"]\n[grid]\nmethod = [\"none\", \"mwn\"]\n\
         noise = [0.8]\nseed = [0, 1]\n{extra}"
    );
    std::fs::create_dir_all(d.join("exp")).unwrap();
    common::write(d, "exp/job.toml", &job);
    for (name, acc) in runs {
        let run = d.join("exp/runs").join(name);
        std::fs::create_dir_all(&run).unwrap();
        let results = format!(r#"{{"protocol": "mwn", "metrics": {{"acc1": {acc}}}}}"#);
        std::fs::write(run.join("results.json"), results).unwrap();
    }
}

const RUNS: [(&str, f64); 4] = [
    ("method_none-noise0.8-seed0", 0.80),
    ("method_none-noise0.8-seed1", 0.82),
    ("method_mwn-noise0.8-seed0", 0.90),
    ("method_mwn-noise0.8-seed1", 0.92),
];

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    read(path)
        .lines()
        .map(|l| l.split(',').map(String::from).collect())
        .collect()
}

fn close(cell: &str, want: f64) {
    let got: f64 = cell
        .parse()
        .unwrap_or_else(|_| panic!("{cell:?} is not a number"));
    assert!((got - want).abs() < 1e-9, "{got} != {want}");
}

#[test]
fn report_puts_the_papers_number_and_the_difference_beside_ours() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let declared = "[[paper]]\nsource = \"Shu et al. 2019, Table 1\"\n\
                    cell = { method = \"mwn\", noise = 0.8 }\nvalue = 91.51\n";
    finished_sweep(d, declared, &RUNS);
    let out = nls(d).args(["report", "exp"]).output().unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    // By hand: MW-Net's runs 90 and 92 → mean 91.0, std √2 = 1.4; Δ = 91.0 − 91.51 = −0.51.
    assert!(
        said.contains("| noise | method | ours | paper | Δ | source |")
            && said.contains(
                "| 0.8 | mwn | 91.0 ± 1.4 (2) | 91.51 | -0.5 | Shu et al. 2019, Table 1 |"
            ),
        "{said}"
    );
    assert!(
        !said.contains("| 0.8 | none | 81.0"),
        "CE has no paper number: {said}"
    );
    let summary = csv_rows(&d.join("exp/summary.csv"));
    assert_eq!(
        summary[0],
        [
            "noise",
            "method",
            "acc1_mean",
            "acc1_std",
            "n",
            "paper",
            "delta"
        ]
    );
    let mwn = summary.iter().find(|r| r[1] == "mwn").unwrap();
    close(&mwn[2], 0.91);
    close(&mwn[5], 0.9151);
    close(&mwn[6], 0.91 - 0.9151);
    let none = summary.iter().find(|r| r[1] == "none").unwrap();
    assert_eq!(&none[5..], ["", ""], "no number for CE");
    let per_run = csv_rows(&d.join("exp/report.csv"));
    assert_eq!(per_run[0].last().unwrap(), "paper");
    for row in &per_run[1..] {
        match row[0].as_str() {
            "mwn" => close(row.last().unwrap(), 0.9151),
            _ => assert_eq!(row.last().unwrap(), ""),
        }
    }
    let json: serde_json::Value = serde_json::from_str(&read(&d.join("exp/report.json"))).unwrap();
    let cell = json["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"][0] == "mwn")
        .unwrap();
    assert_eq!(cell["paper_source"], "Shu et al. 2019, Table 1");
}

#[test]
fn a_report_without_paper_numbers_has_no_paper_columns() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    finished_sweep(d, "", &RUNS);
    let out = nls(d).args(["report", "exp"]).output().unwrap();
    let said = text(&out);
    assert!(out.status.success() && !said.contains("paper"), "{said}");
    assert_eq!(
        read(&d.join("exp/summary.csv")).lines().next(),
        Some("noise,method,acc1_mean,acc1_std,n")
    );
    assert_eq!(
        read(&d.join("exp/report.csv")).lines().next(),
        Some("method,noise,seed,protocol,acc1")
    );
}

fn experiments() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// The papers' presets (and seed 000's grid) each have a smoke scale.
const PRESETS: [&str; 11] = [
    "clothing1m",
    "ghosh_lan",
    "ieg",
    "mini_webvision",
    "mwn",
    "mwn_wrn",
    "noise_sweep",
    "rkd",
    "ssr",
    "ssr_clothing1m",
    "ssr_mini_webvision",
];

#[test]
fn every_preset_passes_the_trainers_check_at_both_scales() {
    let dir = tempfile::tempdir().unwrap();
    let files = experiments();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for p in PRESETS {
        assert!(
            names.iter().any(|n| n == p),
            "experiments/{p}.toml is missing"
        );
    }
    for (file, name) in files.iter().zip(&names) {
        let has_smoke = read(file).lines().any(|l| l.trim() == "[smoke]");
        assert_eq!(
            has_smoke,
            PRESETS.contains(&name.as_str()),
            "{name}: [smoke] table"
        );
        let scales: &[&[&str]] = match has_smoke {
            true => &[&[], &["--smoke"]],
            false => &[&[]],
        };
        for scale in scales {
            let out = nls(dir.path())
                .arg("run")
                .arg(file)
                .arg("--dry-run")
                .args(*scale)
                .arg("--trainer")
                .arg(runs::trainer())
                .output()
                .unwrap();
            assert!(out.status.success(), "{name} {scale:?}: {}", text(&out));
            assert!(
                text(&out).contains("task(s) to run"),
                "{name}: {}",
                text(&out)
            );
        }
    }
}

/// Measured: about 26 s on 2 shared cores (load 8) with one thread per rank.
#[test]
fn the_mwn_preset_runs_end_to_end_at_smoke_scale() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/mwn.toml");
    let out = nls(d)
        .arg("run")
        .arg(&file)
        .args(["--smoke", "--local", "--trainer"])
        .arg(runs::trainer())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let exp = d.join("runs/mwn-smoke");
    for method in ["none", "mwn"] {
        let name =
            format!("data_dir__usr_share_datasets_fashion-mnist-method_{method}-noise0.6-seed0");
        let results: serde_json::Value =
            serde_json::from_str(&read(&exp.join("runs").join(name).join("results.json"))).unwrap();
        assert_eq!(results["protocol"], "mwn", "{results}");
        assert_eq!(results["config"]["epochs"], 1, "the smoke scale's epochs");
        assert_eq!(results["config"]["method"], method);
        assert_eq!(results["config"]["train_samples"], 1100);
        let trusted = results["held_out_trusted_ids"].as_array().map(Vec::len);
        assert_eq!(trusted, Some(100), "[smoke.args] holdout_trusted");
        let acc = results["metrics"]["acc1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{acc}");
    }
    let report = nls(d).args(["report", "runs/mwn-smoke"]).output().unwrap();
    assert!(report.status.success(), "{}", text(&report));
    assert!(
        !text(&report).contains("paper"),
        "smoke runs declare no paper numbers"
    );
}

/// `experiments/<preset>.toml` run at smoke scale in `d` on the fixtures of
/// `tests/fixtures/real_world.py`: the results of its one run, `<run>`.
fn smoke_on_fixtures(d: &Path, preset: &str, run: &str) -> serde_json::Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var_os("NLS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    let fixture = std::process::Command::new(python)
        .arg(root.join("tests/fixtures/real_world.py"))
        .arg(d.join("data/fixtures"))
        .output()
        .unwrap();
    assert!(fixture.status.success(), "{}", text(&fixture));
    let out = nls(d)
        .arg("run")
        .arg(root.join(format!("experiments/{preset}.toml")))
        .args(["--smoke", "--local", "--trainer"])
        .arg(runs::trainer())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let run = d.join(format!("runs/{preset}-smoke/runs/{run}"));
    serde_json::from_str(&read(&run.join("results.json"))).unwrap()
}

/// The Clothing1M preset streams the official layout (the fixture of
/// `tests/fixtures/real_world.py`): its 6 noisy training images, resized and randomly cropped.
#[test]
fn the_clothing1m_preset_streams_the_release_at_smoke_scale() {
    let dir = tempfile::tempdir().unwrap();
    let run = "data_dir_data_fixtures_clothing1m-loss_ce-seed0";
    let results = smoke_on_fixtures(dir.path(), "clothing1m", run);
    let config = &results["config"];
    assert_eq!(config["stream"], true, "{config}");
    assert_eq!(config["geometry"], "crop", "{config}");
    assert_eq!(config["train_resize"], 17, "{config}");
    assert_eq!(results["metrics"]["train_images"], 6, "{results}");
    let acc = results["metrics"]["acc1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{acc}");
}

/// SSR's Clothing1M preset on the same fixture, its epoch a class-balanced subset: of the 6
/// noisy training images (noisy labels 0, 1, 1, 2, 13, 5), 14 a epoch at most 14/14 = 1 a
/// class draws 5, which the selection is over (so at most 5 selected) and whose 2 batches of 2
/// are the epoch.
#[test]
fn the_ssr_clothing1m_preset_selects_within_the_epochs_subset() {
    let dir = tempfile::tempdir().unwrap();
    let run = "data_dir_data_fixtures_clothing1m-seed0";
    let results = smoke_on_fixtures(dir.path(), "ssr_clothing1m", run);
    let config = &results["config"];
    assert_eq!(config["method"], "ssr", "{config}");
    assert_eq!(config["epoch_samples"], 14, "{config}");
    assert_eq!(config["autoaugment_policy"], "imagenet", "{config}");
    assert_eq!(config["ssr_balance_votes"], false, "{config}");
    assert_eq!(config["linear_init_std"], 0.001, "{config}");
    let metrics = &results["metrics"];
    assert_eq!(metrics["train_images"], 6, "{results}");
    assert_eq!(metrics["epoch_images"], 4, "{results}");
    let selected = metrics["ssr_selected"].as_f64().unwrap();
    assert!(
        (1.0..=5.0).contains(&selected),
        "{selected} selected of the 5"
    );
}

#[test]
fn paper_numbers_survive_job_toml() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{HEAD}{GRID}{}", paper("{ method = \"mwn\", noise = 0.8 }"));
    let exp = load(&text, Scale::Full).unwrap();
    // job.toml as launch writes it, read back as report and resume read it.
    let resolved = common::write(dir.path(), "job.toml", &exp.to_toml().unwrap());
    let back = Experiment::load(Some(&resolved), &JobArgs::default(), &[]).unwrap();
    assert_eq!(back.paper, exp.paper);
    assert_eq!(back.paper[0].value, 91.5);
    assert_eq!(
        back.paper[0].pairs(),
        [
            ("method".into(), "mwn".into()),
            ("noise".into(), "0.8".into())
        ]
    );
}
