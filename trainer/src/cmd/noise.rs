//! `trainer noise`: generate a grid of noise configurations, one file per configuration, or import
//! an existing label file into the same format. Everything is generated before anything is
//! written, so a bad argument or a failed configuration leaves no partial output.

use super::variant_args::VariantArgs;
use crate::cluster::signals;
use crate::data::{to_classes, DatasetName, Source, Split, SplitData};
use crate::long_step::LongStep;
use crate::noise::decimal::{parse_decimal_list, parse_seed_list};
use crate::noise::file::{self, NoiseFile, Origin};
use crate::noise::import::{read_labels, Target};
use crate::noise::symmetric::Convention;
use crate::noise::{self as noise_gen, figure, stats, CleanSet, Kind, Spec};
use anyhow::{ensure, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct NoiseArgs {
    /// Dataset folder (or its parent); the format is detected.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Expected dataset name (cifar10, cifar100, fashion-mnist, imagefolder); checked against the data.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Kind of noise.
    #[arg(long, value_enum, default_value = "matrix")]
    pub kind: Kind,
    /// Noise levels in [0, 1], e.g. `0.4` or `0,0.1,...,0.7`.
    #[arg(long, default_value = "0.2")]
    pub noise: String,
    /// Fractions of zero off-diagonal noise rates in [0, 1) (matrix kind), e.g. `0,0.2,0.4,0.6`.
    #[arg(long, default_value = "0")]
    pub sparsity: String,
    /// Seeds, e.g. `0`, `0-4` or `0,3,5-7`.
    #[arg(long, default_value = "0")]
    pub seeds: String,
    /// Symmetric noise only: `any` (new label uniform over all classes) or `other` (over the
    /// other classes). [default: any]
    #[arg(long, value_enum)]
    pub convention: Option<Convention>,
    #[command(flatten)]
    pub variants: VariantArgs,
    /// Matrix kind: accept only noise matrices that are learnable under the class prior.
    #[arg(long)]
    pub valid: bool,
    /// Output folder (created if missing).
    #[arg(long, default_value = "noisy-labels")]
    pub out: PathBuf,
    /// Also write the original tools' form: noisy_labels_{seed}/noisylabels_noise{n}_sparsity{s}.json.
    #[arg(long)]
    pub legacy: bool,
    /// Import instead of generating: an nls file, an original-form JSON, or a CIFAR-N file (.pt/.npy).
    #[arg(long, conflicts_with_all = ["noise", "sparsity", "seeds", "legacy", "flips", "asym_classes", "instance_model"])]
    pub import: Option<PathBuf>,
    /// CIFAR-N label set to import (aggre, worse, random1, random2, random3, noisy).
    #[arg(long, requires = "import")]
    pub label_set: Option<String>,
    /// Print the realized matrix of every configuration (default: only when there are at most 4).
    #[arg(long)]
    pub tables: bool,
    /// Also write `<name>.png` beside each labels file: its realized noise matrix as a heatmap.
    #[arg(long)]
    pub plot: bool,
    /// Write more than 10000 files, and replace existing files whose content differs.
    #[arg(long)]
    pub force: bool,
}

/// Most files one command writes without `--force` (a typo such as `--seeds 0-100000` would
/// otherwise fill the disk).
pub const MAX_FILES: usize = 10_000;

/// A configuration ready to be written.
struct Output {
    path: PathBuf,
    file: NoiseFile,
    legacy: Option<PathBuf>,
}

pub fn run(args: NoiseArgs) -> Result<()> {
    signals::install()?;
    let specs = if args.import.is_none() {
        grid(&args)?
    } else {
        Vec::new()
    };
    check_file_count(&args, specs.len().max(1))?;
    if args.plot {
        // A missing font fails now, before any file is written.
        plot::check_font().context("--plot")?;
    }
    let source = Source::detect(&args.data_dir)?;
    if let Some(expected) = &args.dataset {
        let expected = DatasetName::parse(expected)?;
        ensure!(
            expected == source.name,
            "--dataset {} was given, but {} holds {}",
            expected.as_str(),
            args.data_dir.display(),
            source.name.as_str()
        );
    }
    eprintln!("found {}", source.describe());
    let train = source.load(Split::Train)?;
    let clean = to_classes(&train.labels, source.num_classes)
        .with_context(|| format!("labels of {}", source.root.display()))?;
    let keys = train_keys(&source, &train);
    let outputs = match &args.import {
        Some(path) => vec![import(&args, path, &source, &keys, &clean)?],
        None => generate_all(&args, &specs, &source, &train, &clean)?,
    };
    check_overwrites(&outputs, &keys, args.force)?;
    let show_tables = args.tables || outputs.len() <= 4;
    for (i, out) in outputs.iter().enumerate() {
        signals::check(|| {
            format!(
                "writing configuration {} of {} ({i} written to {})",
                i + 1,
                outputs.len(),
                args.out.display()
            )
        })?;
        write_output(out, &keys)?;
        if args.plot {
            figure::write_plot(
                &out.file,
                &source.class_names,
                &figure::plot_path(&out.path),
            )?;
        }
        if show_tables {
            let title = format!("{}: realized noise matrix", out.path.display());
            println!("{}", stats::matrix_table(&out.file.realized_matrix, &title));
        }
    }
    print_summary(&outputs);
    eprintln!(
        "wrote {} configuration(s){} to {}",
        outputs.len(),
        if args.plot { " and their plots" } else { "" },
        args.out.display()
    );
    Ok(())
}

/// All (noise, sparsity, seed) configurations; noise 0 is the same at every sparsity, so it is
/// produced once, with sparsity 0, as the original grid does.
fn grid(args: &NoiseArgs) -> Result<Vec<Spec>> {
    let noises = parse_decimal_list(&args.noise).context("--noise")?;
    let sparsities = parse_decimal_list(&args.sparsity).context("--sparsity")?;
    let seeds = parse_seed_list(&args.seeds).context("--seeds")?;
    ensure!(
        args.convention.is_none() || args.kind == Kind::Symmetric,
        "--convention applies only to --kind symmetric (the {} kind decides its own flips): \
         drop it",
        args.kind.as_str()
    );
    let mut specs = Vec::new();
    for &seed in &seeds {
        for &noise in &noises {
            for &sparsity in &sparsities {
                if noise.is_zero() && !sparsity.is_zero() && sparsities.iter().any(|s| s.is_zero())
                {
                    continue;
                }
                let spec = Spec {
                    kind: args.kind,
                    noise,
                    sparsity,
                    seed,
                    convention: args.convention.unwrap_or(Convention::Any),
                    valid_check: args.valid,
                    variants: args.variants.variants(),
                };
                spec.validate()?;
                specs.push(spec);
            }
        }
    }
    Ok(specs)
}

fn generate_all(
    args: &NoiseArgs,
    specs: &[Spec],
    source: &Source,
    train: &SplitData,
    clean: &[usize],
) -> Result<Vec<Output>> {
    let pixels = if specs.iter().any(|s| s.kind == Kind::Instance) {
        Some(train.pixel_bytes()?)
    } else {
        None
    };
    let clean_set = CleanSet {
        dataset: source.name,
        num_classes: source.num_classes,
        labels: clean,
        pixels: pixels.as_deref(),
    };
    let mut step = LongStep::new("generating noise configurations", specs.len());
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            step.advance(i)?;
            let generated =
                noise_gen::generate(spec, &clean_set).with_context(|| describe(spec))?;
            let file = NoiseFile::new(
                source.name,
                source.num_classes,
                clean,
                generated.labels,
                generated.requested_matrix,
                Origin {
                    spec: Some(spec),
                    source: None,
                },
            );
            Ok(Output {
                path: args.out.join(file::file_name(source.name, spec)),
                file,
                legacy: args.legacy.then(|| file::legacy_path(&args.out, spec)),
            })
        })
        .collect()
}

fn import(
    args: &NoiseArgs,
    path: &Path,
    source: &Source,
    keys: &[String],
    clean: &[usize],
) -> Result<Output> {
    let target = Target {
        keys,
        clean,
        num_classes: source.num_classes,
    };
    let labels = read_labels(path, args.label_set.as_deref(), &target)?;
    ensure!(
        labels.len() == clean.len(),
        "{} has {} labels, but the training split has {}",
        path.display(),
        labels.len(),
        clean.len()
    );
    let origin = match &args.label_set {
        Some(set) => format!("{} ({set})", path.display()),
        None => path.display().to_string(),
    };
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match &args.label_set {
        Some(set) => format!("{}-imported-{stem}-{set}.json", source.name.as_str()),
        None => format!("{}-imported-{stem}.json", source.name.as_str()),
    };
    let file = NoiseFile::new(
        source.name,
        source.num_classes,
        clean,
        labels,
        None,
        Origin {
            spec: None,
            source: Some(origin),
        },
    );
    Ok(Output {
        path: args.out.join(name),
        file,
        legacy: None,
    })
}

/// Refuses a request for more than [`MAX_FILES`] files unless `--force`.
fn check_file_count(args: &NoiseArgs, configurations: usize) -> Result<()> {
    let per_configuration = 1 + usize::from(args.legacy) + usize::from(args.plot);
    let files = configurations * per_configuration;
    ensure!(
        files <= MAX_FILES || args.force,
        "this would write {files} files ({configurations} configurations × {per_configuration}), \
         more than {MAX_FILES}: check --noise, --sparsity and --seeds, or add --force"
    );
    Ok(())
}

/// Refuses, before anything is written, to replace an existing file whose content would change,
/// unless `--force`. Files with the same content are rewritten harmlessly (a rerun); a plot
/// follows its labels file, so it is covered by that file's check.
fn check_overwrites(outputs: &[Output], keys: &[String], force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    let mut changed = Vec::new();
    for out in outputs {
        if differs(&out.path, || out.file.to_bytes())? {
            changed.push(out.path.display().to_string());
        }
        if let Some(legacy) = &out.legacy {
            if differs(legacy, || file::legacy_bytes(keys, &out.file.labels))? {
                changed.push(legacy.display().to_string());
            }
        }
    }
    ensure!(
        changed.is_empty(),
        "{} existing file(s) would be replaced by different content ({}{}); nothing was \
         written: choose another --out, or add --force to replace them",
        changed.len(),
        changed[..changed.len().min(3)].join(", "),
        if changed.len() > 3 { ", ..." } else { "" }
    );
    Ok(())
}

/// Whether `path` exists with content other than `bytes()`.
fn differs(path: &Path, bytes: impl FnOnce() -> Result<Vec<u8>>) -> Result<bool> {
    match std::fs::read(path) {
        Ok(existing) => Ok(existing != bytes()?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_output(out: &Output, keys: &[String]) -> Result<()> {
    out.file.write(&out.path)?;
    if let Some(legacy) = &out.legacy {
        file::write_legacy(legacy, keys, &out.file.labels)?;
    }
    Ok(())
}

/// One Markdown row per configuration.
fn print_summary(outputs: &[Output]) {
    let show = |v: Option<f64>| v.map_or("-".to_string(), |x| x.to_string());
    println!("| file | kind | noise | sparsity | seed | realized flip rate |");
    println!("|---|---|---:|---:|---:|---:|");
    for out in outputs {
        let f = &out.file;
        let name = out.path.file_name().unwrap_or_default().to_string_lossy();
        let seed = f.seed.map_or("-".to_string(), |s| s.to_string());
        println!(
            "| {name} | {} | {} | {} | {seed} | {:.4} |",
            f.kind.as_str(),
            show(f.noise),
            show(f.sparsity),
            f.realized_flip_rate
        );
    }
}

fn describe(spec: &Spec) -> String {
    format!(
        "{}{} noise {} sparsity {} seed {}",
        spec.kind.as_str(),
        spec.variants.name_suffix(),
        spec.noise,
        spec.sparsity,
        spec.seed
    )
}

/// Names of the training samples for the original JSON form: the image path for an ImageFolder
/// (as `<data root>/train/<class>/<file>`), else the sample id.
pub fn train_keys(source: &Source, train: &SplitData) -> Vec<String> {
    match &train.paths {
        Some(paths) => paths
            .iter()
            .map(|p| source.root.join(p).display().to_string())
            .collect(),
        None => train.ids.iter().map(u64::to_string).collect(),
    }
}
