//! Helpers of the benches (`trainer/benches/*.rs` include `common` by path): sizes from the
//! environment, thread counts, child processes and their timing, the machine's description.

use anyhow::{bail, Context, Result};
use std::process::{Command, Output};
use std::time::Instant;

/// `name` from the environment as a count, or `default` when unset.
pub fn env_count(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v} is not a count")),
        Err(_) => Ok(default),
    }
}

/// The median (the mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n % 2 {
        1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A finished child's stdout, or an error with its stderr when it failed.
pub fn checked(what: &str, out: Output) -> Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A Python reference script of the benches (`trainer/benches/<script>`) run with `args` on
/// `cores` threads; its stdout parsed as one JSON object.
pub fn reference_json(script: &str, args: &[String], cores: usize) -> Result<serde_json::Value> {
    let script = super::workspace_root().join("trainer/benches").join(script);
    let out = threads(&mut Command::new(super::python()), cores)
        .arg(&script)
        .args(args)
        .args(["--threads".to_string(), cores.to_string()])
        .output()
        .with_context(|| format!("starting {}", super::python().display()))?;
    let stdout = checked(&format!("{} {}", script.display(), args.join(" ")), out)?;
    serde_json::from_str(stdout.trim()).with_context(|| format!("parsing {stdout:?}"))
}

/// The same OpenMP and MKL thread count for a child, whichever side of a comparison it is.
pub fn threads(cmd: &mut Command, n: usize) -> &mut Command {
    cmd.env("OMP_NUM_THREADS", n.to_string())
        .env("MKL_NUM_THREADS", n.to_string())
}

/// CPU seconds (user + system) of this process's waited-for children so far, from
/// /proc/self/stat (clock ticks of `getconf CLK_TCK`, usually 100 a second). Less sensitive than
/// wall time to other jobs on a shared machine.
pub fn children_cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // Fields after the command name, which ends at the last ')': state is field 3, cutime 16,
    // cstime 17.
    let rest = &stat[stat.rfind(')').context("/proc/self/stat without a ')'")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<f64>().ok())
            .with_context(|| format!("field {i} of /proc/self/stat"))
    };
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0);
    Ok((ticks(16)? + ticks(17)?) / hz)
}

/// Wall and CPU seconds of one child process run by `f`.
pub struct Timing {
    pub wall: f64,
    pub cpu: f64,
}

pub fn timed(f: impl FnOnce() -> Result<Output>) -> Result<(Timing, Output)> {
    let (cpu0, started) = (children_cpu_seconds()?, Instant::now());
    let out = f()?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = children_cpu_seconds()? - cpu0;
    Ok((Timing { wall, cpu }, out))
}

/// The CPU's model name, for the line that says where figures were measured.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// One line of the benchmark summary: printed, and appended (tab-separated: bench, what, ratio,
/// target) to the file `$NLS_BENCH_SUMMARY` when set, for `scripts/bench.sh`'s table.
pub fn summary(bench: &str, what: &str, ratio: f64, target: &str) -> Result<()> {
    println!("summary: {bench}: {what}: {ratio:.2} (target {target})");
    let Some(path) = std::env::var_os("NLS_BENCH_SUMMARY") else {
        return Ok(());
    };
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.to_string_lossy()))?;
    writeln!(f, "{bench}\t{what}\t{ratio:.3}\t{target}")
        .with_context(|| format!("writing {}", path.to_string_lossy()))
}
