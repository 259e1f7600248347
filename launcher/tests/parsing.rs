//! Parsing what SLURM prints (squeue, scontrol, sacct, sbatch) and the trainer's stop.json.

use launcher::monitor::{self, RunContext, StopInfo};
use launcher::submit::parse_sbatch;
use std::path::Path;

#[test]
fn squeue_odd_lines() {
    let out = "123_[0-3%2]|PENDING|0:00|1:00:00|(JobArrayTaskLimit)\n\
               123_4|RUNNING|12:01|1:00:00|gpu-[01-02]\n\
               124|PENDING|0:00|UNLIMITED|(ReqNodeNotAvail, UnavailableNodes:n[1-2])\n\
               125|REQUEUE_HOLD|0:00|10:00|(launch failed requeued held)\n\n";
    let rows = monitor::parse_squeue(out).unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(monitor::split_job_id(&rows[0].id), ("123", Some("[0-3%2]")));
    assert_eq!(monitor::split_job_id(&rows[1].id), ("123", Some("4")));
    assert_eq!(monitor::split_job_id(&rows[2].id), ("124", None));
    assert_eq!(rows[2].reason, "(ReqNodeNotAvail, UnavailableNodes:n[1-2])");
    assert_eq!(rows[1].elapsed, "12:01");
    assert!(rows.iter().all(|r| !monitor::is_finished(&r.state)));
    assert!(monitor::parse_squeue("").unwrap().is_empty());
    assert!(monitor::parse_squeue("garbage").is_err());
}

#[test]
fn scontrol_one_line_records() {
    let out = "JobId=130 ArrayJobId=123 ArrayTaskId=4 JobName=nls sweep UserId=u(1000) \
               JobState=COMPLETED Reason=None Dependency=(null) Requeue=1 Restarts=2 BatchFlag=1 \
               ExitCode=0:0 RunTime=00:10:00 TimeLimit=01:00:00 TRES=cpu=1,mem=1G,node=1 \
               Command=/scratch/my exp/job.sh WorkDir=/home/u\n\
               JobId=131 ArrayJobId=123 ArrayTaskId=5 JobState=PENDING Reason=BeginTime Restarts=0\n";
    let recs = monitor::parse_scontrol(out);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["JobName"], "nls sweep");
    assert_eq!(recs[0]["Restarts"], "2");
    assert_eq!(recs[0]["TRES"], "cpu=1,mem=1G,node=1");
    assert_eq!(recs[0]["Command"], "/scratch/my exp/job.sh");
    assert_eq!(recs[0]["WorkDir"], "/home/u");
    assert_eq!(recs[1]["JobState"], "PENDING");
    assert!(monitor::parse_scontrol("").is_empty());
    assert!(
        monitor::parse_scontrol("slurm_load_jobs error: Invalid job id specified\n").is_empty()
    );
}

#[test]
fn sacct_records_without_steps() {
    let out = "123|COMPLETED|0:0|00:10:00\n123.batch|COMPLETED|0:0|00:10:00\n\
               123.0|COMPLETED|0:0|00:09:58\n124_3|CANCELLED by 1000|0:15|00:00:05\n125|REQUEUED|0:0|00:01:00\n";
    let rows = monitor::parse_sacct(out);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1].id, "124_3");
    assert!(monitor::is_finished(&rows[1].state));
    assert!(!monitor::is_finished(&rows[2].state));
}

#[test]
fn finished_states() {
    for s in [
        "COMPLETED",
        "FAILED",
        "CANCELLED by 0",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "CANCELLED+",
    ] {
        assert!(monitor::is_finished(s), "{s}");
    }
    for s in [
        "PENDING",
        "RUNNING",
        "REQUEUED",
        "PREEMPTED",
        "REQUEUE_HOLD",
        "COMPLETING",
        "SUSPENDED",
        "",
    ] {
        assert!(!monitor::is_finished(s), "{s}");
    }
}

#[test]
fn sbatch_answers() {
    assert_eq!(parse_sbatch("12345\n").unwrap().job_id, "12345");
    let c = parse_sbatch("12345;cluster-a").unwrap();
    assert_eq!(
        (c.job_id.as_str(), c.cluster.as_deref()),
        ("12345", Some("cluster-a"))
    );
    assert!(parse_sbatch("sbatch: error: Batch job submission failed").is_err());
}

fn stop(reason: &str) -> StopInfo {
    serde_json::from_value(serde_json::json!({
        "reason": reason, "signal": "USR1", "step": 1200, "epoch": 3.0, "timeouts": 4,
        "preemptions": 0, "file": "/x/checkpoints/ckpt-1200.safetensors", "time": "t"
    }))
    .unwrap()
}

fn ctx(exp: &Path) -> RunContext<'_> {
    RunContext {
        exp,
        active: false,
        local: false,
        cancelled: false,
        epochs: false,
    }
}

#[test]
fn stop_json_explained() {
    let exp = Path::new("/x");
    let c = ctx(exp);
    assert_eq!(
        monitor::explain_stop(&stop("finished"), &c),
        "finished at step 1200"
    );
    let active = RunContext { active: true, ..c };
    let t = monitor::explain_stop(&stop("timeout"), &active);
    assert!(t.contains("requeued"), "{t}");
    let t = monitor::explain_stop(&stop("preemption"), &c);
    assert!(
        t.contains("no longer queued") && t.contains("`nls-launch resume /x`"),
        "{t}"
    );
    let t = monitor::explain_stop(&stop("max-timeouts"), &c);
    assert!(
        t.contains("after 4 time limits") && t.contains("`nls-launch resume /x`"),
        "{t}"
    );
}

#[test]
fn stop_hints_fit_the_run() {
    let c = ctx(Path::new("/x"));
    // Evaluation runs count epochs: step is the step within the epoch.
    let eval = RunContext { epochs: true, ..c };
    assert_eq!(
        monitor::explain_stop(&stop("finished"), &eval),
        "finished at epoch 3"
    );
    let local = RunContext { local: true, ..c };
    let t = monitor::explain_stop(&stop("preemption"), &local);
    assert!(t.contains("`nls-launch resume /x --local`"), "{t}");
    // No hint to sbatch a script: a sweep member's folder has none.
    assert!(!t.contains("sbatch"), "{t}");
    let cancelled = RunContext {
        cancelled: true,
        ..c
    };
    let t = monitor::explain_stop(&stop("preemption"), &cancelled);
    assert!(
        t.starts_with("cancelled at step 1200") && !t.contains("preemption"),
        "{t}"
    );
}

#[test]
fn scontrol_names_array_tasks_by_array_job_and_task() {
    let out = "JobId=4245 ArrayJobId=4242 ArrayTaskId=3 JobState=COMPLETED ExitCode=0:0\n\
               JobId=4250 JobState=FAILED ExitCode=2:0\n";
    let recs = monitor::parse_scontrol(out);
    assert_eq!(monitor::record_id(&recs[0]), "4242_3");
    assert_eq!(monitor::record_id(&recs[1]), "4250");
}
