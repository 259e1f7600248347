//! SLURM tasks-per-node lists (`SLURM_TASKS_PER_NODE`, `SLURM_STEP_TASKS_PER_NODE`). `4(x2),3`
//! means four tasks on each of the first two nodes and three on the third. SLURM exports a node's
//! own task count nowhere else, so this is where the local world size comes from.

use super::{digits, ClusterError, MAX_EXPANSION};

/// Expand a tasks-per-node list into one count per node: `"4(x2),3"` → `[4, 4, 3]`.
/// Counts and repeats must be positive; lists longer than [`MAX_EXPANSION`] are refused.
pub fn parse_tasks_per_node(s: &str) -> Result<Vec<usize>, ClusterError> {
    let err = |reason: String| ClusterError::TasksPerNode {
        value: s.to_string(),
        reason,
    };
    if s.trim().is_empty() {
        return Err(err("the list is empty".into()));
    }
    let mut counts = Vec::new();
    for item in s.split(',') {
        let (tasks, repeat) = parse_item(item.trim()).map_err(err)?;
        if counts.len().saturating_add(repeat) > MAX_EXPANSION {
            return Err(err(format!("describes more than {MAX_EXPANSION} nodes")));
        }
        counts.extend(std::iter::repeat_n(tasks, repeat));
    }
    Ok(counts)
}

/// One item: `N` or `N(xR)`, returned as (tasks, repeat).
fn parse_item(item: &str) -> Result<(usize, usize), String> {
    let Some((tasks, rest)) = item.split_once('(') else {
        return Ok((positive(item, "task count", item)?, 1));
    };
    let repeat = rest
        .strip_prefix('x')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("the repeat in '{item}' is not of the form '(xR)'"))?;
    Ok((
        positive(tasks, "task count", item)?,
        positive(repeat, "repeat count", item)?,
    ))
}

fn positive(s: &str, what: &str, item: &str) -> Result<usize, String> {
    match digits::<usize>(s) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "{what} '{s}' in '{item}' is not a positive integer"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_repeats() {
        let cases: [(&str, &[usize]); 7] = [
            ("4(x2),3", &[4, 4, 3]),
            ("2", &[2]),
            ("1(x3)", &[1, 1, 1]),
            ("8(x4)", &[8, 8, 8, 8]),
            ("1,2,3", &[1, 2, 3]),
            (" 4(x2) , 3 ", &[4, 4, 3]),
            ("2(x1),1(x2),5", &[2, 1, 1, 5]),
        ];
        for (s, want) in cases {
            assert_eq!(parse_tasks_per_node(s).unwrap(), want, "parsing {s:?}");
        }
    }

    #[test]
    fn malformed_lists_name_the_problem() {
        let cases = [
            ("4(x0)", "repeat count '0'"),
            ("(x2)", "task count ''"),
            ("4(2)", "repeat in '4(2)' is not of the form"),
            ("4(x2", "repeat in '4(x2'"),
            ("4(y2)", "repeat in '4(y2)'"),
            ("a", "task count 'a'"),
            ("0", "task count '0'"),
            ("-1", "task count '-1'"),
            ("4,,3", "task count ''"),
            ("", "the list is empty"),
            ("1(x2000000)", "more than 1000000 nodes"),
            ("1(x99999999999999999999999)", "repeat count"),
        ];
        for (s, want) in cases {
            let msg = parse_tasks_per_node(s).unwrap_err().to_string();
            assert!(
                msg.starts_with(&format!("tasks-per-node '{s}' is malformed: "))
                    && msg.contains(want),
                "parsing {s:?}: got {msg:?}, want it to mention {want:?}"
            );
        }
    }
}
