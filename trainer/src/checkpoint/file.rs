//! One checkpoint file: a standard `.safetensors` file (so stock tools can inspect it) whose
//! header metadata holds
//! - `nls_format`: [`FORMAT`], so a future layout change is refused by name, not misread;
//! - `nls_state`: the caller's JSON state as a string (safetensors metadata is string → string);
//! - `nls_sha256`: SHA-256 over the state string and every tensor's name, dtype, shape and raw
//!   bytes in name order. safetensors itself checks only that offsets fit the file, so without
//!   it a flipped bit in the data region would resume training from silently wrong weights.

use super::{host_tensors, kind_of, Checkpoint};
use crate::atomic::write_atomic;
use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{serialize, Dtype, SafeTensors, View};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use tch::Tensor;

/// The layout this build writes and reads.
pub const FORMAT: &str = "nls-checkpoint-1";
const KEY_FORMAT: &str = "nls_format";
const KEY_STATE: &str = "nls_state";
const KEY_SHA: &str = "nls_sha256";
/// safetensors refuses headers above 100 MB; a larger length field means "not this format".
const MAX_HEADER: u64 = 100_000_000;

/// Writes `ckpt` to `path` atomically (a crash leaves the previous file or the new one).
pub fn write(path: &Path, ckpt: &Checkpoint) -> Result<()> {
    let bytes = encode(ckpt).with_context(|| format!("writing checkpoint {}", path.display()))?;
    write_atomic(path, &bytes)
}

/// Reads and verifies a checkpoint; tensors come back on the CPU, sorted by name. Every error
/// message starts with the file's path and says what is wrong with it.
pub fn read(path: &Path) -> Result<Checkpoint> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
    // The path goes into the message itself (not only a context layer) so that a caller logging
    // with plain `{}` still tells the user which file is bad and why.
    decode(&bytes).map_err(|e| anyhow!("checkpoint {}: {e:#}", path.display()))
}

fn encode(ckpt: &Checkpoint) -> Result<Vec<u8>> {
    let state = serde_json::to_string(&ckpt.state).context("serializing the state")?;
    let host = host_tensors(&ckpt.tensors, Tensor::shallow_clone)?;
    let sha = digest(
        &state,
        host.iter()
            .map(|(n, h)| (n.as_str(), h.dtype, h.shape.as_slice(), h.bytes.as_slice())),
    );
    let metadata: HashMap<String, String> = [
        (KEY_FORMAT, FORMAT.to_string()),
        (KEY_STATE, state),
        (KEY_SHA, sha),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    serialize(host.iter().map(|(n, h)| (n.as_str(), h)), &Some(metadata))
        .map_err(|e| anyhow!("safetensors serialization failed: {e}"))
}

fn decode(bytes: &[u8]) -> Result<Checkpoint> {
    let header = check_layout(bytes)?;
    let metadata = nls_metadata(&header)?;
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow!("not a valid safetensors file ({e})"))?;
    // (name, dtype, shape, bytes), in name order as the digest wants them.
    let mut views: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), View::shape(&v).to_vec(), v.data()))
        .collect();
    views.sort_by(|a, b| a.0.cmp(&b.0));
    let computed = digest(
        metadata.state,
        views
            .iter()
            .map(|(n, d, s, b)| (n.as_str(), *d, s.as_slice(), *b)),
    );
    if computed != metadata.sha {
        bail!(
            "checksum mismatch (stored {}, computed {computed}): the file is damaged",
            metadata.sha
        );
    }
    let state =
        serde_json::from_str(metadata.state).context("the stored state is not valid JSON")?;
    let tensors = views
        .into_iter()
        .map(|(name, dtype, shape, data)| {
            let size: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            let t = Tensor::f_from_data_size(data, &size, kind_of(dtype)?)
                .with_context(|| format!("loading tensor {name}"))?;
            Ok((name, t))
        })
        .collect::<Result<_>>()?;
    Ok(Checkpoint { state, tensors })
}

/// Parses the header by hand before safetensors does, to tell "not a safetensors file" from
/// "truncated" (safetensors reports both as an opaque offset error). Returns the header.
fn check_layout(bytes: &[u8]) -> Result<Map<String, Value>> {
    let len = bytes.len() as u64;
    let Some(prefix) = bytes.first_chunk::<8>() else {
        bail!("truncated or not a safetensors file (only {len} bytes)");
    };
    let n = u64::from_le_bytes(*prefix);
    if n > MAX_HEADER || bytes.get(8).is_some_and(|&b| b != b'{') {
        bail!("not a safetensors file (no JSON header at the start)");
    }
    if 8 + n > len {
        bail!(
            "truncated: the header alone needs {} bytes, the file has {len}",
            8 + n
        );
    }
    let header: Map<String, Value> = serde_json::from_slice(&bytes[8..(8 + n) as usize])
        .map_err(|e| anyhow!("not a safetensors file (header is not a JSON object: {e})"))?;
    let expected = 8 + n + data_len(&header);
    if expected > len {
        bail!("truncated: the header describes {expected} bytes, the file has {len}");
    }
    if expected < len {
        bail!("{} unexpected bytes after the tensor data", len - expected);
    }
    Ok(header)
}

/// Bytes of the data region as the header describes it: the largest end offset.
fn data_len(header: &Map<String, Value>) -> u64 {
    header
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .filter_map(|(_, info)| info.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0)
}

struct NlsMetadata<'a> {
    state: &'a str,
    sha: &'a str,
}

/// Our three metadata entries; a missing or different format is named before anything else,
/// since every later check assumes this layout.
fn nls_metadata(header: &Map<String, Value>) -> Result<NlsMetadata<'_>> {
    let meta = header.get("__metadata__").and_then(Value::as_object);
    let get = |key: &str| meta.and_then(|m| m.get(key)).and_then(Value::as_str);
    match get(KEY_FORMAT) {
        None => bail!("unknown format: no {KEY_FORMAT} in the metadata (not an nls checkpoint)"),
        Some(f) if f != FORMAT => bail!("unknown format {f:?} (this build reads {FORMAT:?})"),
        Some(_) => {}
    }
    let state =
        get(KEY_STATE).with_context(|| format!("{KEY_STATE} is missing from the metadata"))?;
    let sha = get(KEY_SHA).with_context(|| format!("{KEY_SHA} is missing from the metadata"))?;
    Ok(NlsMetadata { state, sha })
}

/// Hex SHA-256 over the state and the tensors (which must come in name order). Every field is
/// length-prefixed so that moving bytes between adjacent fields changes the digest.
fn digest<'a>(
    state: &str,
    tensors: impl Iterator<Item = (&'a str, Dtype, &'a [usize], &'a [u8])>,
) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(state.as_bytes());
    for (name, dtype, shape, data) in tensors {
        field(name.as_bytes());
        field(format!("{dtype:?}").as_bytes());
        let dims: Vec<u8> = shape
            .iter()
            .flat_map(|&d| (d as u64).to_le_bytes())
            .collect();
        field(&dims);
        field(data);
    }
    hex::encode(h.finalize())
}
