//! nls trainer library. Modules follow the data's path:
//! cluster env → distributed → data → noise → model → method → checkpoint → metrics.

pub mod atomic;
pub mod augment;
pub mod checkpoint;
pub mod cluster;
pub mod cmd;
pub mod data;
pub mod distributed;
pub mod long_step;
pub mod method;
pub mod metrics;
pub mod model;
pub mod noise;
pub mod optim;
pub mod run_lock;
