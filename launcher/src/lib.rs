//! `nls-launch` as a library: the binary (`main.rs`) is argument parsing only.
//!
//! Modules follow the launcher's data path: [`config`] (flags + experiment file → one
//! validated [`config::JobConfig`]; a preset's [`paper`] numbers and [`smoke`] scale) →
//! [`sweep`] (a grid → one trainer command per array task)
//! → [`check`] (the trainer's own parser accepts every command) → [`guard`] (one job per exp-dir)
//! → [`render`] (the sbatch script from `templates/`, every user value quoted by [`quote`])
//! → [`submit`] (`sbatch --parsable`, `submissions.jsonl`) → [`monitor`] (squeue, scontrol,
//! sacct and `stop.json`, parsed by pure functions) → [`follow`] (status, logs, cancel).
//! Files are written through [`atomic`].

pub mod atomic;
pub mod cancelled;
pub mod check;
pub mod config;
pub mod figures;
pub mod follow;
pub mod guard;
pub mod launch;
pub mod local;
pub mod monitor;
pub mod paper;
pub mod quote;
pub mod render;
pub mod report;
pub mod resume;
pub mod smoke;
pub mod submit;
pub mod summary;
pub mod sweep;
