//! What a run reports while it trains: JSON lines in the exp-dir ([`jsonl`]) mirrored into
//! TensorBoard scalars ([`tensorboard`]), an online kNN accuracy of the backbone ([`knn`]), and
//! a status line on a terminal ([`progress`]), and the peak memory ([`memory`]).

pub mod jsonl;
pub mod knn;
pub mod memory;
pub mod progress;
pub mod tensorboard;

pub use jsonl::MetricsLog;
pub use knn::knn_accuracy;
pub use progress::Progress;
