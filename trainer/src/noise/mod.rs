//! Label-noise generation: the kinds of noise researchers compare, each deterministic per seed.
//!
//! - [`matrix`]: cleanlab's noise matrix from a trace, with sparsity and exact-count flipping.
//! - [`symmetric`]: uniform noise in both conventions.
//! - [`asymmetric`]: class-pair maps (CIFAR-10, CIFAR-100, Fashion-MNIST).
//! - [`instance`]: instance-dependent noise (Xia et al. 2020; Cheng et al. 2023).
//! - [`variants`]: the seed papers' variants of these (sampled flips, ELR's CIFAR-100 blocks,
//!   Cheng's shared projection).
//!
//! [`file`] holds the versioned output format and the original tools' forms; [`figure`] draws
//! a file's realized matrix.

pub mod asymmetric;
pub mod cifarn;
pub mod decimal;
pub mod figure;
pub mod file;
pub mod import;
pub mod instance;
pub mod matrix;
pub mod rng;
pub mod stats;
pub mod symmetric;
pub mod variants;

use crate::data::DatasetName;
use anyhow::{ensure, Context, Result};
use clap::ValueEnum;
use decimal::Decimal;
use matrix::Matrix;
use rng::{stream, Stream};
use serde::{Deserialize, Serialize};
use symmetric::Convention;
use variants::Variants;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// cleanlab noise matrix from trace = K·(1 − noise), with --sparsity.
    Matrix,
    /// Uniform noise (see --convention).
    Symmetric,
    /// Class-pair flips (CIFAR-10, CIFAR-100, Fashion-MNIST maps).
    Asymmetric,
    /// Instance-dependent noise (Xia et al. 2020).
    Instance,
    /// Labels taken from an existing file (original JSON form, CIFAR-10N/100N).
    Imported,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Matrix => "matrix",
            Kind::Symmetric => "symmetric",
            Kind::Asymmetric => "asymmetric",
            Kind::Instance => "instance",
            Kind::Imported => "imported",
        }
    }
}

/// One noise configuration.
#[derive(Clone, Debug)]
pub struct Spec {
    pub kind: Kind,
    pub noise: Decimal,
    pub sparsity: Decimal,
    pub seed: u64,
    pub convention: Convention,
    /// Only accept noise matrices that are learnable under the class prior (matrix kind).
    pub valid_check: bool,
    /// The seed papers' variants (counted or sampled flips, CIFAR-100 map, instance model).
    pub variants: Variants,
}

impl Spec {
    /// Check the ranges before any work starts.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.kind != Kind::Imported,
            "imported labels are read with --import, not generated"
        );
        ensure!(
            self.noise.at_most_one(),
            "noise {} is outside [0, 1]",
            self.noise
        );
        ensure!(
            self.sparsity.below_one(),
            "sparsity {} is outside [0, 1)",
            self.sparsity
        );
        ensure!(
            self.kind == Kind::Matrix || self.sparsity.is_zero(),
            "--sparsity applies only to --kind matrix (got sparsity {} with --kind {})",
            self.sparsity,
            self.kind.as_str()
        );
        self.variants.check(self.kind)
    }
}

/// What the generator needs to know about the clean training split.
pub struct CleanSet<'a> {
    pub dataset: DatasetName,
    pub num_classes: usize,
    pub labels: &'a [usize],
    /// Images as N·d bytes, needed only for instance noise.
    pub pixels: Option<&'a [u8]>,
}

/// Noisy labels and the matrix they were drawn from (where there is one).
pub struct Generated {
    pub labels: Vec<usize>,
    pub requested_matrix: Option<Matrix>,
}

pub fn generate(spec: &Spec, clean: &CleanSet) -> Result<Generated> {
    spec.validate()?;
    let k = clean.num_classes;
    let labels = clean.labels;
    let flips = || stream(spec.seed, Stream::Flips);
    Ok(match spec.kind {
        Kind::Matrix => {
            let counts = class_counts(labels, k);
            let prior: Vec<f64> = counts
                .iter()
                .map(|&c| c as f64 / labels.len() as f64)
                .collect();
            let trace_spec = matrix::TraceSpec {
                num_classes: k,
                trace: spec.noise.complement_times(k),
                sparsity: spec.sparsity.to_f64(),
                valid_for_prior: spec.valid_check.then_some(prior.as_slice()),
            };
            let nm = matrix::from_trace(&trace_spec, &mut stream(spec.seed, Stream::NoiseMatrix))?;
            let noisy = matrix::flip_exact(labels, &nm, &mut flips())?;
            Generated {
                labels: noisy,
                requested_matrix: Some(nm),
            }
        }
        Kind::Symmetric => Generated {
            labels: symmetric::flip(
                labels,
                k,
                spec.noise,
                spec.convention,
                spec.variants.flips,
                &mut flips(),
            ),
            requested_matrix: Some(symmetric_matrix(k, spec.noise.to_f64(), spec.convention)),
        },
        Kind::Asymmetric => {
            let map = asymmetric::class_map(clean.dataset, k, spec.variants.asym_classes)?;
            Generated {
                labels: asymmetric::flip(
                    labels,
                    &map,
                    spec.noise,
                    spec.variants.flips,
                    &mut flips(),
                ),
                requested_matrix: Some(map_matrix(&map, spec.noise.to_f64())),
            }
        }
        Kind::Instance => {
            let pixels = clean
                .pixels
                .context("instance noise needs the training images")?;
            Generated {
                labels: instance::flip(
                    labels,
                    k,
                    pixels,
                    spec.noise,
                    spec.variants.instance_model,
                    spec.seed,
                )?,
                requested_matrix: None,
            }
        }
        Kind::Imported => unreachable!("rejected by validate"),
    })
}

/// Samples per class; labels must already be checked to lie in 0..k.
pub fn class_counts(labels: &[usize], k: usize) -> Vec<usize> {
    let mut counts = vec![0; k];
    labels.iter().for_each(|&y| counts[y] += 1);
    counts
}

fn symmetric_matrix(k: usize, r: f64, convention: Convention) -> Matrix {
    let off = match convention {
        Convention::Any => r / k as f64,
        Convention::Other => r / (k - 1) as f64,
    };
    (0..k)
        .map(|s| {
            (0..k)
                .map(|y| {
                    if s == y {
                        1.0 - off * (k - 1) as f64
                    } else {
                        off
                    }
                })
                .collect()
        })
        .collect()
}

fn map_matrix(map: &[Option<usize>], r: f64) -> Matrix {
    let mut nm = matrix::identity(map.len());
    for (y, target) in map.iter().enumerate() {
        if let Some(s) = *target {
            nm[y][y] = 1.0 - r;
            nm[s][y] = r;
        }
    }
    nm
}
