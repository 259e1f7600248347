//! Training methods: self-supervised losses ([`ssl`]) and evaluation (being written).

pub mod ssl;
