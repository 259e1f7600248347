//! Decisions every rank must take together: whether to stop (any rank's signal stops all, at
//! the same step, so none is left waiting in a collective) and checks that ranks agree.

use super::{ProcessGroup, ReduceOp};
use crate::cluster::signals::{self, StopSignal};
use anyhow::{ensure, Result};
use tch::Tensor;

/// The stop decision of a training loop: the strongest signal any rank has received (SIGTERM
/// over SIGUSR1), agreed by all, so none is left waiting in a collective. Taken one step late on
/// several ranks: the flag of step
/// k is reduced at step k and read at step k + 1, once that step's work is queued. Reading it at
/// once would make the CPU wait, every step, for the GPU to finish the step before it could
/// queue the next. Every rank reads the same reduced flags at the same steps, so all still stop
/// at one step boundary; a signal costs one more step. The flag is filled on the device (a fill
/// kernel, not an upload that would wait for the stream).
#[derive(Default)]
pub struct StopPoll {
    pending: Option<Tensor>,
}

impl StopPoll {
    /// The signal to stop on after this step, if any rank's arrived before the previous one.
    pub fn poll(&mut self, group: &ProcessGroup) -> Result<Option<StopSignal>> {
        let code = signals::pending().map_or(0, StopSignal::code);
        if group.world_size() == 1 {
            return Ok(StopSignal::from_code(code));
        }
        let mut flag = Tensor::full([1], f64::from(code), (tch::Kind::Float, group.device()));
        group.all_reduce(&mut flag, ReduceOp::Max)?;
        let agreed = match self.pending.replace(flag) {
            Some(previous) => StopSignal::from_code(previous.double_value(&[0]) as u8),
            None => None,
        };
        Ok(agreed)
    }
}

/// Fails unless every rank holds the same `value` (exact for values below 2^53).
pub fn same_everywhere(group: &ProcessGroup, what: &str, value: u64) -> Result<()> {
    let mut lo = Tensor::from_slice(&[-(value as f64)]).to_device(group.device());
    let mut hi = Tensor::from_slice(&[value as f64]).to_device(group.device());
    group.all_reduce(&mut lo, ReduceOp::Max)?;
    group.all_reduce(&mut hi, ReduceOp::Max)?;
    let (lo, hi) = (-lo.double_value(&[0]), hi.double_value(&[0]));
    ensure!(
        lo == hi,
        "ranks disagree on {what} (from {lo} to {hi}): do all ranks see the same exp-dir?"
    );
    Ok(())
}

/// True on every rank when `flag` is true on any rank.
pub fn any_rank(group: &ProcessGroup, flag: bool) -> Result<bool> {
    if group.world_size() == 1 {
        return Ok(flag);
    }
    let mut t = Tensor::from_slice(&[f32::from(u8::from(flag))]).to_device(group.device());
    group.all_reduce(&mut t, ReduceOp::Max)?;
    Ok(t.double_value(&[0]) > 0.0)
}
