//! One error type for everything that reads the launcher's environment. Each message names the
//! variable (or list), the offending value and what was expected, because the person reading it
//! is usually looking at a failed SLURM job log, not at this code.

use super::env::Launcher;

#[derive(thiserror::Error, Debug)]
pub enum ClusterError {
    /// A variable the detected launcher always sets is absent.
    #[error("{var} is not set ({hint})")]
    Missing { var: String, hint: &'static str },

    /// A variable is set but its value cannot be used.
    #[error("{var}='{value}' is not {expected} ({hint})")]
    Invalid {
        var: String,
        value: String,
        expected: &'static str,
        hint: &'static str,
    },

    /// A SLURM hostlist expression (e.g. `gpu-[01-03,07],cpu5`) that does not parse.
    #[error("hostlist '{list}' is malformed: {reason}")]
    Hostlist { list: String, reason: String },

    /// A SLURM tasks-per-node expression (e.g. `4(x2),3`) that does not parse.
    #[error("tasks-per-node '{value}' is malformed: {reason} (expected e.g. '4(x2),3')")]
    TasksPerNode { value: String, reason: String },

    /// A parse error from a list-valued variable, tagged with the variable it came from. The inner
    /// error is part of this message rather than a `source`, so it is not printed twice.
    #[error("{var}: {inner}")]
    InVar {
        var: String,
        inner: Box<ClusterError>,
    },

    /// Values that parse but contradict each other (e.g. a rank not below the world size).
    #[error("inconsistent {launcher} environment: {detail}")]
    Inconsistent { launcher: Launcher, detail: String },
}

impl ClusterError {
    /// Tag a list-parsing error with the variable that held the list.
    pub(crate) fn in_var(self, var: &str) -> ClusterError {
        ClusterError::InVar {
            var: var.to_string(),
            inner: Box::new(self),
        }
    }
}
