//! Training methods: self-supervised losses ([`ssl`]) and evaluation (being written).

pub mod embed;
pub mod eval;
pub mod layers;
pub mod ssl;
