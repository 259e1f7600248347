//! Backbone embeddings of whole image sets, shared by the pretraining kNN monitor and the
//! evaluation's feature cache.

use crate::augment::{normalize, to_unit_float, AugmentConfig};
use crate::distributed::ProcessGroup;
use crate::model::{to_rgb, Backbone};
use anyhow::Result;
use tch::{Device, Tensor};

/// Backbone features (eval mode, no grad) of uint8 images `[N, 1|3, H, W]`, `chunk` images at a
/// time: each chunk is moved to `device`, scaled to [0, 1], resized to `aug.size` when its side
/// differs (bilinear), and normalized with `aug.mean`/`aug.std`, as the training views are.
/// `after_chunk` gets the number of images done so far (progress; an error stops the work).
pub fn embed(
    backbone: &Backbone,
    images: &Tensor,
    aug: &AugmentConfig,
    device: Device,
    chunk: i64,
    after_chunk: &mut dyn FnMut(usize) -> Result<()>,
) -> Result<Tensor> {
    let single = ProcessGroup::single(device);
    let n = images.size()[0];
    let mut out = Vec::new();
    tch::no_grad(|| -> Result<()> {
        for start in (0..n).step_by(chunk as usize) {
            let x = to_rgb(&images.narrow(0, start, chunk.min(n - start)))?.to_device(device);
            let x = to_unit_float(&x);
            let x = if x.size()[2] == aug.size && x.size()[3] == aug.size {
                x
            } else {
                x.upsample_bilinear2d([aug.size, aug.size], false, None, None)
            };
            let x = normalize(&x, aug.mean, aug.std);
            out.push(backbone.forward(&x, false, &single)?);
            after_chunk((start + chunk).min(n) as usize)?;
        }
        Ok(())
    })?;
    Ok(Tensor::cat(&out, 0))
}
