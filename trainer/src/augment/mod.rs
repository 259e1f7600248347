//! Batched image augmentations on the training device (being written).
