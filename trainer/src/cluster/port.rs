//! Rendezvous ports. Every task of a SLURM job must agree on the master port without talking to
//! each other first, so the port is a pure function of what they all see: the job id.

/// torch's default `MASTER_PORT`, used when nothing else chooses one.
pub const DEFAULT_PORT: u16 = 29500;

const BASE: u64 = 15_000;
const SPAN: u64 = 17_000;
/// Prime, so array tasks of one job land far apart in the span rather than on adjacent ports.
const TASK_STRIDE: u64 = 7919;

/// The rendezvous port for a SLURM job when `MASTER_PORT` is not given:
///
/// `port = 15000 + ((job_id + 7919 · array_task_id) mod 17000)`, so 15000..=31999,
/// with `array_task_id` taken as 0 outside array jobs.
///
/// That range stays above the privileged ports (< 1024) and below Linux's default ephemeral range
/// (32768–60999, `net.ipv4.ip_local_port_range`), where the kernel hands out ports for outgoing
/// connections and a listener could find its port already taken. The same job and task always
/// give the same port; consecutive job ids give different (adjacent) ports, so jobs sharing a
/// node rarely collide. They still can (ids 17000 apart), which is why a group also checks the
/// peer's [`group_id`](super::ClusterEnv::group_id) instead of trusting the port alone.
pub fn derive_port(job_id: u64, array_task_id: Option<u64>) -> u16 {
    let task = u128::from(array_task_id.unwrap_or(0));
    let offset = (u128::from(job_id) + u128::from(TASK_STRIDE) * task) % u128::from(SPAN);
    u16::try_from(BASE + offset as u64).expect("15000 + (x mod 17000) fits in u16")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_documented_formula() {
        assert_eq!(derive_port(12_345, None), 27_345);
        assert_eq!(derive_port(17_000, None), 15_000);
        // (16000 + 7919) mod 17000 = 6919: the task term wraps around the span.
        assert_eq!(derive_port(16_000, Some(1)), 21_919);
        assert_eq!(derive_port(100, Some(0)), derive_port(100, None));
    }

    #[test]
    fn is_deterministic_and_outside_reserved_ranges() {
        let jobs = (0..50_000).chain([u64::MAX, u64::MAX - 1, 1 << 40]);
        for job in jobs {
            for task in [None, Some(1), Some(999), Some(u64::MAX)] {
                let port = derive_port(job, task);
                assert_eq!(port, derive_port(job, task));
                assert!(
                    (1024..32_768).contains(&port),
                    "job {job} task {task:?}: {port}"
                );
            }
            assert_ne!(
                derive_port(job, None),
                derive_port(job.wrapping_add(1), None)
            );
            assert_ne!(derive_port(job, Some(1)), derive_port(job, Some(2)));
        }
    }
}
