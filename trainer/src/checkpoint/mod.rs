//! Checkpoints for preemption-safe pretraining, and the backbone export users take away.
//!
//! - [`file`]: one checkpoint = a standard `.safetensors` file whose header metadata carries the
//!   caller's JSON state and a SHA-256 over everything, so a flipped byte or a truncated file is
//!   caught on read instead of silently resuming from garbage;
//! - [`dir`]: a directory of numbered checkpoints that keeps the newest few and, on resume,
//!   falls back past damaged ones (a preemption can strike mid-write on a flaky filesystem);
//! - [`export`](mod@export): float32 weights plus a JSON model card, readable by HF/torch tools.
//!
//! Every file is written with [`crate::atomic::write_atomic`]: a reader sees the old file or the
//! new one, never half of one.

pub mod dir;
pub mod export;
pub mod file;

pub use dir::CheckpointDir;
pub use export::export;
pub use file::{read, write};

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, View};
use std::borrow::Cow;
use tch::{Device, Kind, Tensor};

/// One checkpoint: opaque JSON state owned by the caller plus named tensors of any dtype that
/// safetensors and tch share (f32, f64, i64, i32, u8, bool, bf16, f16), on any device.
/// [`read`] returns the tensors on the CPU, sorted by name.
#[derive(Debug)]
pub struct Checkpoint {
    pub state: serde_json::Value,
    pub tensors: Vec<(String, Tensor)>,
}

/// A tensor's bytes taken off the device, in the shape safetensors serializes. Owning the bytes
/// lets the checksum and the serializer read the same memory without a second device copy.
pub(crate) struct HostTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl HostTensor {
    /// Raw little-endian bytes of `t` (detached, on the CPU, row-major); `what` names it in errors.
    pub fn from_tensor(what: &str, t: &Tensor) -> Result<HostTensor> {
        let kind = t
            .f_kind()
            .with_context(|| format!("tensor {what}: no dtype"))?;
        let dtype = Dtype::try_from(kind)
            .with_context(|| format!("tensor {what}: dtype {kind:?} cannot be stored"))?;
        let cpu = t.detach().to_device(Device::Cpu).contiguous();
        let numel = cpu.numel();
        let mut bytes = vec![0u8; numel * kind.elt_size_in_bytes()];
        cpu.f_copy_data_u8(&mut bytes, numel)
            .with_context(|| format!("copying tensor {what} to host memory"))?;
        let shape = cpu.size().iter().map(|&d| d as usize).collect();
        Ok(HostTensor {
            dtype,
            shape,
            bytes,
        })
    }
}

impl View for &HostTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Converts every tensor, sorted by name. safetensors keys its header by name, so a duplicate
/// would silently drop a tensor (and misalign the rest): refuse it instead.
pub(crate) fn host_tensors(
    tensors: &[(String, Tensor)],
    convert: impl Fn(&Tensor) -> Tensor,
) -> Result<Vec<(String, HostTensor)>> {
    let mut out = tensors
        .iter()
        .map(|(name, t)| Ok((name.clone(), HostTensor::from_tensor(name, &convert(t))?)))
        .collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = out.windows(2).find(|w| w[0].0 == w[1].0) {
        bail!("tensor name {:?} appears twice", w[0].0);
    }
    Ok(out)
}

/// The kind a stored dtype maps back to (the inverse of `Dtype::try_from(Kind)`).
pub(crate) fn kind_of(dtype: Dtype) -> Result<Kind> {
    Kind::try_from(dtype).with_context(|| format!("dtype {dtype:?} is not supported by tch"))
}
