//! Submission: `sbatch --parsable <script>` → the job id, recorded in `<exp>/submissions.jsonl`
//! (one JSON object per line: job id, cluster, time, script, array spec and task indices).

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What `sbatch --parsable` said: `12345` or `12345;cluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    pub job_id: String,
    pub cluster: Option<String>,
}

/// One line of `submissions.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub job_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub time: String,
    pub script: PathBuf,
    /// `--array` value for sweeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array: Option<String>,
    /// The array task indices this submission runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<usize>>,
    /// `local` for `nls-launch --local`; absent for SLURM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
}

pub const SUBMISSIONS: &str = "submissions.jsonl";

/// Parse `sbatch --parsable` output: the last non-empty line, `<id>[;<cluster>]`.
pub fn parse_sbatch(stdout: &str) -> Result<Submitted> {
    let line = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .with_context(|| "sbatch printed no job id".to_string())?;
    let (id, cluster) = match line.split_once(';') {
        Some((id, c)) => (
            id.trim(),
            Some(c.trim().to_string()).filter(|c| !c.is_empty()),
        ),
        None => (line, None),
    };
    ensure!(
        !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()),
        "sbatch printed {line:?}, not a job id"
    );
    Ok(Submitted {
        job_id: id.to_string(),
        cluster,
    })
}

/// Run `sbatch --parsable script`; an error carries sbatch's stderr.
pub fn sbatch(script: &Path) -> Result<Submitted> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .output()
        .context("running sbatch (is SLURM installed here? --dry-run prints the script instead)")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "sbatch {} failed ({}): {}",
            script.display(),
            out.status,
            stderr.trim()
        );
    }
    parse_sbatch(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("reading sbatch's answer (stderr: {})", stderr.trim()))
}

/// Append one submission to `<exp>/submissions.jsonl` (one write, then fsync).
pub fn record(exp_dir: &Path, s: &Submission) -> Result<()> {
    let path = exp_dir.join(SUBMISSIONS);
    let mut line = serde_json::to_string(s).context("encoding the submission")?;
    line.push('\n');
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all(line.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Every submission recorded in `<exp>/submissions.jsonl`, oldest first.
pub fn read_submissions(exp_dir: &Path) -> Result<Vec<Submission>> {
    let path = exp_dir.join(SUBMISSIONS);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (was this experiment submitted?)",
            path.display()
        )
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sbatch_answers() {
        let plain = parse_sbatch("12345\n").unwrap();
        assert_eq!((plain.job_id.as_str(), plain.cluster), ("12345", None));
        let c = parse_sbatch("12345;gpu-cluster\n").unwrap();
        assert_eq!(c.cluster.as_deref(), Some("gpu-cluster"));
        let warned = parse_sbatch("sbatch: warning: x\n\n678\n").unwrap();
        assert_eq!(warned.job_id, "678");
        assert!(parse_sbatch("").is_err());
        assert!(parse_sbatch("Submitted batch job 5").is_err());
    }
}
