//! The supervised learning-rate schedules against torch.optim.lr_scheduler
//! (tests/python/schedule_reference.py) on per-step and per-epoch grids, hand-computed values,
//! and their validation.

mod common;

use serde_json::json;
use std::f64::consts::PI;
use trainer::optim::{ScheduleKind, TrainSchedule};

const REFERENCE: &str = include_str!("../../tests/python/schedule_reference.py");
const BASE: f64 = 0.1;
const EPOCHS: usize = 12;
const STEPS_PER_EPOCH: usize = 4;

fn schedule(kind: ScheduleKind, warmup_epochs: f64, per_epoch: bool) -> TrainSchedule {
    TrainSchedule {
        schedule: kind,
        warmup_epochs,
        per_epoch,
        ..Default::default()
    }
}

/// Every schedule kind, with and without warm-up, counted per step and per epoch.
fn grid() -> Vec<TrainSchedule> {
    let mut out = Vec::new();
    for per_epoch in [false, true] {
        for warmup in [0.0, 2.0] {
            out.push(TrainSchedule {
                lr_end: 0.01,
                ..schedule(ScheduleKind::Cosine, warmup, per_epoch)
            });
            out.push(TrainSchedule {
                milestones: vec![3.0, 7.0, 10.0],
                gamma: 0.2,
                ..schedule(ScheduleKind::Step, warmup, per_epoch)
            });
            for mult in [1.0, 2.0] {
                out.push(TrainSchedule {
                    lr_end: 0.05,
                    restart_epochs: 3.0,
                    restart_mult: mult,
                    ..schedule(ScheduleKind::Restarts, warmup, per_epoch)
                });
            }
            out.push(schedule(ScheduleKind::Constant, warmup, per_epoch));
        }
    }
    // Warm-up over a fraction of an epoch (seed 001 warms up over 1% of training).
    out.push(schedule(ScheduleKind::Cosine, 0.75, false));
    out
}

fn torch_rates(schedules: &[TrainSchedule]) -> Vec<Vec<f64>> {
    let configs: Vec<_> = schedules
        .iter()
        .map(|s| {
            json!({
                "base": BASE, "steps_per_epoch": STEPS_PER_EPOCH, "epochs": EPOCHS,
                "per_epoch": s.per_epoch, "warmup": s.warmup_epochs,
                "schedule": serde_json::to_value(s.schedule).unwrap(), "lr_end": s.lr_end,
                "milestones": s.milestones, "gamma": s.gamma, "restart": s.restart_epochs,
                "restart_mult": s.restart_mult,
            })
        })
        .collect();
    let out = common::run_python(REFERENCE, &[&json!(configs).to_string()]);
    serde_json::from_str(&out).unwrap()
}

/// Every step of a 12-epoch run equals torch's scheduler within rounding (its cosine is a
/// recurrence; its warm-up starts at 1e-12·base instead of 0).
#[test]
fn schedules_match_torch_lr_scheduler() {
    let schedules = grid();
    let want = torch_rates(&schedules);
    for (s, want) in schedules.iter().zip(want) {
        s.validate(EPOCHS).unwrap();
        assert_eq!(want.len(), EPOCHS * STEPS_PER_EPOCH);
        for (step, w) in want.iter().enumerate() {
            let got = s.lr(BASE, step, STEPS_PER_EPOCH, EPOCHS);
            assert!(
                (got - w).abs() <= 1e-12,
                "{s:?} step {step}: got {got}, torch {w}"
            );
        }
    }
}

/// Values worked by hand: base 0.1, 10 epochs of 10 steps.
#[test]
fn schedule_hand_values() {
    let lr = |s: &TrainSchedule, step| s.lr(0.1, step, 10, 10);
    let cosine = TrainSchedule {
        lr_end: 0.1,
        warmup_epochs: 0.5,
        ..Default::default()
    };
    // warm-up over 5 steps from 0: step 2 → 0.1·2/5; cosine from step 5 over 95 steps down to 0.01
    assert!((lr(&cosine, 0) - 0.0).abs() < 1e-15);
    assert!((lr(&cosine, 2) - 0.04).abs() < 1e-15);
    assert!((lr(&cosine, 5) - 0.1).abs() < 1e-15);
    let half = 0.01 + 0.09 * (1.0 + (PI * 45.0 / 95.0).cos()) / 2.0;
    assert!((lr(&cosine, 50) - half).abs() < 1e-15);
    // the end and past it: lr_end·base, no climb back up
    assert!((lr(&cosine, 100) - 0.01).abs() < 1e-15);
    assert!((lr(&cosine, 250) - 0.01).abs() < 1e-15);

    // per epoch: every step of epoch 5 has the rate of the epoch's start, cos(π/2) → midway
    let per_epoch = TrainSchedule {
        per_epoch: true,
        ..Default::default()
    };
    for step in 50..60 {
        assert!((lr(&per_epoch, step) - 0.05).abs() < 1e-15);
    }

    // steps: ×0.5 from epoch 4 (step 40), ×0.25 from epoch 7.5 (step 75)
    let steps = TrainSchedule {
        schedule: ScheduleKind::Step,
        milestones: vec![4.0, 7.5],
        gamma: 0.5,
        ..Default::default()
    };
    for (step, want) in [(39, 0.1), (40, 0.05), (74, 0.05), (75, 0.025), (99, 0.025)] {
        assert!((lr(&steps, step) - want).abs() < 1e-15, "step {step}");
    }

    // restarts of 2 epochs doubling: cycles start at steps 0, 20, 60; step 40 is half-way
    // through the second (20 of 40 steps), down to lr_end 0
    let restarts = TrainSchedule {
        schedule: ScheduleKind::Restarts,
        restart_epochs: 2.0,
        restart_mult: 2.0,
        ..Default::default()
    };
    for (step, want) in [(0, 0.1), (10, 0.05), (20, 0.1), (40, 0.05), (60, 0.1)] {
        assert!((lr(&restarts, step) - want).abs() < 1e-15, "step {step}");
    }
}

fn error(s: TrainSchedule) -> String {
    format!("{:#}", s.validate(10).unwrap_err())
}

#[test]
fn schedule_validation_names_the_problem() {
    let step = |milestones: Vec<f64>| TrainSchedule {
        schedule: ScheduleKind::Step,
        milestones,
        ..Default::default()
    };
    assert!(error(step(vec![5.0, 3.0])).contains("increase strictly"));
    assert!(error(step(vec![3.0, 10.0])).contains("milestone 10"));
    assert!(error(step(vec![])).contains("needs milestones"));
    let gamma = TrainSchedule {
        gamma: 0.0,
        ..step(vec![3.0])
    };
    assert!(error(gamma).contains("gamma must be in (0, 1]"));
    let early = TrainSchedule {
        warmup_epochs: 4.0,
        ..step(vec![3.0])
    };
    assert!(error(early).contains("after warm-up"));
    let stray = TrainSchedule {
        milestones: vec![3.0],
        ..Default::default()
    };
    assert!(error(stray).contains("only to schedule = \"step\""));
    let long_warmup = TrainSchedule {
        warmup_epochs: 10.0,
        ..Default::default()
    };
    assert!(error(long_warmup).contains("warmup_epochs must be in [0, epochs = 10)"));
    let fractional = TrainSchedule {
        warmup_epochs: 0.1,
        per_epoch: true,
        ..Default::default()
    };
    assert!(error(fractional).contains("whole number"));
    let mult = TrainSchedule {
        schedule: ScheduleKind::Restarts,
        restart_mult: 0.5,
        ..Default::default()
    };
    assert!(error(mult).contains("restart_mult must be >= 1"));
    let end = TrainSchedule {
        lr_end: 1.5,
        ..Default::default()
    };
    assert!(error(end).contains("lr_end"));
    assert!(TrainSchedule::default().validate(0).is_err());
}

/// A configuration file names only what it changes; the kinds have lowercase names.
#[test]
fn schedule_from_toml() {
    let s: TrainSchedule =
        toml::from_str("schedule = \"step\"\nmilestones = [30, 60.5]\nper_epoch = true").unwrap();
    assert_eq!(
        s,
        TrainSchedule {
            schedule: ScheduleKind::Step,
            milestones: vec![30.0, 60.5],
            per_epoch: true,
            ..Default::default()
        }
    );
    for (kind, name) in [
        (ScheduleKind::Cosine, "cosine"),
        (ScheduleKind::Step, "step"),
        (ScheduleKind::Restarts, "restarts"),
        (ScheduleKind::Constant, "constant"),
    ] {
        let s: TrainSchedule = toml::from_str(&format!("schedule = \"{name}\"")).unwrap();
        assert_eq!(s.schedule, kind);
    }
}
