//! Backbones and heads (being written).
