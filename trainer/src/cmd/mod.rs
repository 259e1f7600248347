//! Subcommands of the `trainer` binary: argument parsing and orchestration only; the work lives
//! in the library modules.

pub mod augment_preview;
pub mod check_args;
pub mod data_info;
pub mod dist_args;
pub mod dist_bench;
pub mod dist_check;
pub mod evaluate;
pub mod help;
pub mod noise;
pub mod pack;
pub mod pretrain;
pub mod run_args;
pub mod stop;
pub mod variant_args;
