//! `trainer dist-check`: every collective once, each rank checking the result against values it
//! derives by hand. Run it under srun or torchrun to see that a job's ranks can talk; a Python
//! peer (tests/python/dist_peer.py) issues the same sequence, so mixed groups can be checked too.

use super::dist_args::DistArgs;
use crate::distributed::{ProcessGroup, ReduceOp};
use crate::model::precision::channels_last;
use anyhow::{ensure, Result};
use clap::Args;
use std::time::Duration;
use tch::{Device, Kind, Tensor};

#[derive(Args)]
pub struct DistCheckArgs {
    #[command(flatten)]
    pub dist: DistArgs,
    /// Repeat the whole sequence this many times (a soak test).
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Pause between rounds, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub pause_ms: u64,
}

pub fn run(args: DistCheckArgs) -> Result<()> {
    // Alone too: one GPU still checks NCCL (or Gloo) itself, not the identity of a world of one.
    let (_, group) = args.dist.join_even_alone()?;
    for round in 0..args.rounds {
        check_round(&group)?;
        log::debug!("round {round} ok");
        std::thread::sleep(Duration::from_millis(args.pause_ms));
    }
    println!(
        "dist-check ok: rank {} of {} ({}), {} round(s)",
        group.rank(),
        group.world_size(),
        group.backend_name(),
        args.rounds
    );
    Ok(())
}

/// The sequence shared with tests/python/dist_peer.py; keep the two in step.
pub fn check_round(group: &ProcessGroup) -> Result<()> {
    let (r, w) = (group.rank() as f64, group.world_size() as f64);
    let dev = group.device();
    let base = Tensor::arange_start(1, 6, (Kind::Float, dev));

    // 1. sum of (r+1)·[1..5] over ranks = w(w+1)/2·[1..5]
    let mut t = &base * (r + 1.0);
    group.all_reduce(&mut t, ReduceOp::Sum)?;
    expect("all_reduce sum", &t, &(&base * (w * (w + 1.0) / 2.0)))?;

    // 2. max of r = w-1; integers travel exactly
    let mut t = Tensor::from_slice(&[r as i64, -(r as i64)]).to_device(dev);
    group.all_reduce(&mut t, ReduceOp::Max)?;
    expect(
        "all_reduce max",
        &t,
        &Tensor::from_slice(&[w as i64 - 1, 0]).to_device(dev),
    )?;

    // 3. average of r·[1..5] = (w-1)/2·[1..5]
    let mut t = &base * r;
    group.all_reduce(&mut t, ReduceOp::Avg)?;
    expect("all_reduce avg", &t, &(&base * ((w - 1.0) / 2.0)))?;

    // 4. broadcast from the last rank: arange(4) + 100·root
    let root = group.world_size() - 1;
    let mut t = Tensor::arange(4, (Kind::Float, dev)) + 100.0 * r;
    group.broadcast(&mut t, root)?;
    expect(
        "broadcast",
        &t,
        &(Tensor::arange(4, (Kind::Float, dev)) + 100.0 * root as f64),
    )?;

    // 5. all_gather of a 2×3 block filled with r: rows 2k, 2k+1 hold k
    let t = Tensor::full([2, 3], r, (Kind::Float, dev));
    let gathered = group.all_gather(&t)?;
    let want = Tensor::arange(group.world_size() as i64, (Kind::Float, dev))
        .repeat_interleave_self_int(2, 0, None)
        .unsqueeze(1)
        .expand([-1, 3], false);
    expect("all_gather", &gathered, &want)?;

    // 6. a conv weight stored channels-last, as on a GPU: broadcast from rank 0 (logical
    //    values arange(24) + 1000·r), then summed. Elements travel in logical order, so a peer
    //    holding it contiguous (the Python peer) agrees, and the layout is kept.
    let logical = Tensor::arange(24, (Kind::Float, dev)).view([2, 3, 2, 2]);
    let mut t = channels_last(&(&logical + 1000.0 * r));
    group.broadcast(&mut t, 0)?;
    expect("broadcast channels-last", &t, &logical)?;
    group.all_reduce(&mut t, ReduceOp::Sum)?;
    expect("all_reduce channels-last", &t, &(&logical * w))?;
    ensure!(
        t.stride() == channels_last(&logical).stride(),
        "a channels-last tensor came back with strides {:?}",
        t.stride()
    );

    group.barrier()?;
    Ok(())
}

fn expect(what: &str, got: &Tensor, want: &Tensor) -> Result<()> {
    let (got, want) = (got.to_device(Device::Cpu), want.to_device(Device::Cpu));
    ensure!(
        got.size() == want.size()
            && got
                .to_kind(Kind::Double)
                .allclose(&want.to_kind(Kind::Double), 1e-6, 1e-6, false),
        "{what}: got {:?}, expected {:?}",
        Vec::<f64>::try_from(got.to_kind(Kind::Double).flatten(0, -1))?,
        Vec::<f64>::try_from(want.to_kind(Kind::Double).flatten(0, -1))?
    );
    Ok(())
}
