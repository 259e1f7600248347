//! The representation regularizer of Cheng et al. (2023), "Mitigating memorization of noisy
//! labels via regularization between representations", as their code computes it
//! (`RkdDistance`): cross-entropy plus `λ` (`--rkd-weight`) times the smooth-L1 distance
//! between the pairwise-distance matrices of the classifier's output (softmax probabilities,
//! Euclidean distances) and of the self-supervised projection (*squared* Euclidean distances),
//! each divided by the mean of its positive entries, over the global batch.
//!
//! The projection is the pretraining projector applied to the backbone's features (eval mode),
//! computed once: both stay frozen here. A backbone without its projector (an export, or
//! `none`) uses the backbone's features themselves, and says so in the log.

use super::{per_sample_ce, NoiseMethod, Setup, Step};
use crate::distributed::ProcessGroup;
use crate::method::eval::backbone::{load_into, SavedProjector};
use crate::model::Projector;
use anyhow::Result;
use tch::nn::VarStore;
use tch::{Reduction, Tensor};

pub struct RepresentationRegularizer {
    /// `[N, P]` the self-supervised representation of every training sample.
    projection: Tensor,
    weight: f64,
}

impl RepresentationRegularizer {
    pub fn new(setup: &Setup) -> Result<RepresentationRegularizer> {
        let projection = match &setup.source.projector {
            Some(saved) => {
                let device = setup.features.device();
                let vs = VarStore::new(device);
                let projector = saved_projector(&vs, setup.features.size()[1], saved)?;
                let single = ProcessGroup::single(device);
                tch::no_grad(|| projector.forward(setup.features, false, &single))?
            }
            None => {
                log::warn!(
                    "--method rkd: {} has no projector; regularizing towards the backbone's \
                     features (give a pretraining checkpoint to use its projector)",
                    setup.source.description
                );
                setup.features.shallow_clone()
            }
        };
        Ok(RepresentationRegularizer {
            projection: projection.detach(),
            weight: setup.params.rkd_weight,
        })
    }
}

/// The pretraining projector `saved` on `vs`'s root, its weights loaded.
pub fn saved_projector(
    vs: &VarStore,
    embedding_dim: i64,
    saved: &SavedProjector,
) -> Result<Projector> {
    let projector = Projector::from_spec(&vs.root(), embedding_dim, &saved.mlp)?;
    load_into(vs, &saved.tensors, "the projector")?;
    Ok(projector)
}

/// Pairwise Euclidean distances `[B, B]` (squared when asked), zero diagonal, clamped at 1e-12
/// before the square root as the reference does.
fn pairwise(x: &Tensor, squared: bool) -> Tensor {
    let sq = x.square().sum_dim_intlist(1, false, x.kind());
    let d = (sq.unsqueeze(1) + sq.unsqueeze(0) - x.matmul(&x.tr()) * 2.0).clamp_min(1e-12);
    let d = if squared { d } else { d.sqrt() };
    let n = x.size()[0];
    d * (Tensor::eye(n, (x.kind(), x.device())).neg() + 1.0)
}

/// `d / mean(d[d > 0])`.
fn by_positive_mean(d: &Tensor) -> Tensor {
    let positive = d.gt(0.0).to_kind(d.kind());
    let mean = (d * &positive).sum(d.kind()) / positive.sum(d.kind()).clamp_min(1.0);
    d / mean
}

/// The RKD-distance loss between a student (here: probabilities) and a teacher. The gradient
/// flows into both, as in the reference (`RkdDistance` detaches neither); the head-only
/// protocol's teacher is a constant.
pub fn rkd_distance(student: &Tensor, teacher: &Tensor) -> Tensor {
    let t = by_positive_mean(&pairwise(&teacher.to_kind(student.kind()), true));
    let s = by_positive_mean(&pairwise(student, false));
    s.smooth_l1_loss(&t, Reduction::Mean, 1.0)
}

impl NoiseMethod for RepresentationRegularizer {
    fn loss(&mut self, step: &Step) -> Result<Tensor> {
        let ce = per_sample_ce(step.logits, step.labels).mean(None);
        let teacher = self.projection.index_select(0, step.ids);
        let probs = step.logits.softmax(1, step.logits.kind());
        Ok(ce + rkd_distance(&probs, &teacher) * self.weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three points by hand: teacher at 0, 1, 3 on a line (squared distances 1, 9, 4, mean of
    /// the six off-diagonal entries 14/3), student at 0, 1, 2 (distances 1, 2, 1, mean 4/3).
    #[test]
    fn rkd_distance_by_hand() {
        let teacher = Tensor::from_slice(&[0.0f64, 1.0, 3.0]).view([3, 1]);
        let student = Tensor::from_slice(&[0.0f64, 1.0, 2.0]).view([3, 1]);
        let t =
            [[0.0, 1.0, 9.0], [1.0, 0.0, 4.0], [9.0, 4.0, 0.0]].map(|r| r.map(|v| v * 3.0 / 14.0));
        let s =
            [[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]].map(|r| r.map(|v| v * 3.0 / 4.0));
        let smooth = |d: f64| {
            if d.abs() < 1.0 {
                0.5 * d * d
            } else {
                d.abs() - 0.5
            }
        };
        let mut expected = 0.0;
        for i in 0..3 {
            for j in 0..3 {
                expected += smooth(s[i][j] - t[i][j]) / 9.0;
            }
        }
        let got = rkd_distance(&student, &teacher).double_value(&[]);
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
    }
}
