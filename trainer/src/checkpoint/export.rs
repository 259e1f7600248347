//! The backbone users take away: plain safetensors weights plus a JSON model card.
//!
//! Floats are widened or narrowed to float32 and integers (BN `num_batches_tracked`) kept as
//! int64, the dtypes a freshly built torch model has, so `load_state_dict` needs no casts. The
//! `{"format": "pt"}` metadata is what HF `transformers`/`safetensors.torch` check before loading.

use super::host_tensors;
use crate::atomic::write_atomic;
use anyhow::{anyhow, Context, Result};
use safetensors::tensor::serialize;
use std::collections::HashMap;
use std::path::Path;
use tch::{Kind, Tensor};

/// Writes `path` (the weights) and `path` with extension `.json` (`card`, pretty-printed), each
/// atomically. The card is written second, so a card on disk implies its weights are complete.
pub fn export(path: &Path, tensors: &[(String, Tensor)], card: &serde_json::Value) -> Result<()> {
    let bytes = encode(tensors).with_context(|| format!("exporting {}", path.display()))?;
    write_atomic(path, &bytes)?;
    let card_path = path.with_extension("json");
    let mut text = serde_json::to_string_pretty(card).context("serializing the model card")?;
    text.push('\n');
    write_atomic(&card_path, text.as_bytes())
}

fn encode(tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let host = host_tensors(tensors, export_kind)?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    serialize(host.iter().map(|(n, h)| (n.as_str(), h)), &Some(metadata))
        .map_err(|e| anyhow!("safetensors serialization failed: {e}"))
}

/// float32 for floating-point tensors, int64 for the rest (integers and bools).
fn export_kind(t: &Tensor) -> Tensor {
    let kind = if t.is_floating_point() {
        Kind::Float
    } else {
        Kind::Int64
    };
    t.to_kind(kind)
}
