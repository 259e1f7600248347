//! SLURM hostlist expressions (`SLURM_JOB_NODELIST` and friends), e.g. `gpu-[01-03,07],cpu5`.
//!
//! The node list decides the rendezvous host (its first node) and the node count, so it is parsed
//! in full rather than by a regex that works on the test cluster: commas inside brackets, zero
//! padding, several bracket groups per name and text after a bracket all occur on real clusters.
//! Expansion keeps SLURM's order and its duplicates, as `scontrol show hostnames` does.

use super::{digits, ClusterError, MAX_EXPANSION};
use std::fmt;

/// One numeric range inside brackets (`01-03` or `7`). SLURM pads every number to the width of
/// the lower bound as written, so `01-10` gives `01`..`10` and `1-10` gives `1`..`10`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    lo: u64,
    hi: u64,
    width: usize,
}

impl Range {
    fn single(n: u64, width: usize) -> Range {
        Range {
            lo: n,
            hi: n,
            width,
        }
    }

    fn len(&self) -> u64 {
        (self.hi - self.lo).saturating_add(1)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.width;
        write!(f, "{:0w$}", self.lo)?;
        if self.hi != self.lo {
            write!(f, "-{:0w$}", self.hi)?;
        }
        Ok(())
    }
}

/// A host entry is literal text interleaved with bracket groups: `rack[1-2]-node[01-02]`.
#[derive(Debug)]
enum Part<'a> {
    Text(&'a str),
    Group(Vec<Range>),
}

/// Expand a SLURM hostlist into host names, in SLURM's order (for several bracket groups in one
/// name, the first group varies slowest). Errors name the list and the problem; lists that would
/// expand to more than [`MAX_EXPANSION`] hosts are refused before anything is allocated.
pub fn expand(list: &str) -> Result<Vec<String>, ClusterError> {
    let err = |reason: String| ClusterError::Hostlist {
        list: list.to_string(),
        reason,
    };
    let mut hosts = Vec::new();
    for entry in split_entries(list).map_err(err)? {
        let parts = parse_entry(entry).map_err(err)?;
        let total = count(&parts).saturating_add(hosts.len() as u64);
        if total > MAX_EXPANSION as u64 {
            return Err(err(format!("expands to more than {MAX_EXPANSION} hosts")));
        }
        hosts.extend(expand_entry(&parts));
    }
    Ok(hosts)
}

/// Split at the commas outside brackets, checking bracket balance and nesting on the way.
fn split_entries(list: &str) -> Result<Vec<&str>, String> {
    if list.trim().is_empty() {
        return Err("the list is empty".into());
    }
    let (mut entries, mut start, mut open) = (Vec::new(), 0, None);
    for (i, c) in list.char_indices() {
        match (c, open) {
            ('[', Some(at)) => {
                return Err(format!(
                    "nested '[' at byte {i} (bracket opened at byte {at})"
                ))
            }
            ('[', None) => open = Some(i),
            (']', None) => return Err(format!("unbalanced ']' at byte {i}")),
            (']', Some(_)) => open = None,
            (',', None) => {
                entries.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if let Some(at) = open {
        return Err(format!("unbalanced '[' at byte {at}: no closing ']'"));
    }
    entries.push(&list[start..]);
    entries
        .into_iter()
        .map(|e| match e.trim() {
            "" => Err("empty entry (doubled, leading or trailing comma?)".to_string()),
            e => Ok(e),
        })
        .collect()
}

/// Split one entry (already balanced, unnested) into text and bracket groups.
fn parse_entry(entry: &str) -> Result<Vec<Part<'_>>, String> {
    let mut parts = Vec::new();
    let mut rest = entry;
    while let Some((text, after)) = rest.split_once('[') {
        parts.extend(text_part(text, entry)?);
        let (inside, next) = after.split_once(']').expect("brackets were balanced");
        parts.push(Part::Group(parse_group(inside)?));
        rest = next;
    }
    parts.extend(text_part(rest, entry)?);
    Ok(parts)
}

/// Literal text between groups; host names cannot contain whitespace.
fn text_part<'a>(text: &'a str, entry: &str) -> Result<Option<Part<'a>>, String> {
    if text.contains(char::is_whitespace) {
        return Err(format!("whitespace inside host name '{entry}'"));
    }
    Ok((!text.is_empty()).then_some(Part::Text(text)))
}

/// Parse the inside of one bracket pair: comma-separated numbers and `lo-hi` ranges.
fn parse_group(inside: &str) -> Result<Vec<Range>, String> {
    if inside.trim().is_empty() {
        return Err("empty brackets '[]'".into());
    }
    inside
        .split(',')
        .map(|item| parse_range(item.trim(), inside))
        .collect()
}

fn parse_range(item: &str, group: &str) -> Result<Range, String> {
    if item.is_empty() {
        return Err(format!("empty range in '[{group}]'"));
    }
    let (lo_s, hi_s) = item.split_once('-').unwrap_or((item, item));
    let (Some(lo), Some(hi)) = (digits::<u64>(lo_s), digits::<u64>(hi_s)) else {
        return Err(format!(
            "range '{item}' in '[{group}]' is not a number or a 'lo-hi' pair of numbers"
        ));
    };
    if lo > hi {
        return Err(format!(
            "reversed range '{item}': the lower bound must come first"
        ));
    }
    Ok(Range {
        lo,
        hi,
        width: lo_s.len(),
    })
}

/// How many names an entry expands to, saturating instead of overflowing.
fn count(parts: &[Part]) -> u64 {
    let group_len = |g: &[Range]| g.iter().fold(0u64, |n, r| n.saturating_add(r.len()));
    parts.iter().fold(1u64, |n, part| match part {
        Part::Text(_) => n,
        Part::Group(g) => n.saturating_mul(group_len(g)),
    })
}

/// The cartesian product of an entry's parts, first group outermost.
fn expand_entry(parts: &[Part]) -> Vec<String> {
    let mut names = vec![String::new()];
    for part in parts {
        names = match part {
            Part::Text(t) => names.into_iter().map(|n| n + t).collect(),
            Part::Group(ranges) => names
                .iter()
                .flat_map(|n| ranges.iter().flat_map(move |r| numbers(n, r)))
                .collect(),
        };
    }
    names
}

fn numbers<'a>(prefix: &'a str, r: &Range) -> impl Iterator<Item = String> + 'a {
    let w = r.width;
    (r.lo..=r.hi).map(move |i| format!("{prefix}{i:0w$}"))
}

/// Write hosts as a hostlist that [`expand`]s back to exactly `hosts`, order and duplicates
/// included: consecutive hosts sharing a prefix go into one bracket group, and runs of
/// consecutive numbers with the same padding become ranges (`gpu-[01-03,07],cpu5`). Meant for
/// reports and tests; hosts must be plain host names (non-empty, no brackets, commas or spaces).
pub fn compress(hosts: &[String]) -> String {
    let mut entries: Vec<(&str, Vec<Range>)> = Vec::new();
    for host in hosts {
        let Some((prefix, text, n)) = split_number(host) else {
            entries.push((host, Vec::new()));
            continue;
        };
        match entries.last_mut() {
            Some((p, ranges)) if *p == prefix && !ranges.is_empty() => extend(ranges, text, n),
            _ => entries.push((prefix, vec![Range::single(n, text.len())])),
        }
    }
    let entry = |(prefix, ranges): &(&str, Vec<Range>)| match ranges.as_slice() {
        [] => prefix.to_string(),
        [r] if r.lo == r.hi => format!("{prefix}{r}"),
        rs => format!("{prefix}[{}]", join(rs)),
    };
    entries.iter().map(entry).collect::<Vec<_>>().join(",")
}

/// Grow the last range when `n` (written `text`) follows it and prints the same at its width,
/// else start a new range.
fn extend(ranges: &mut Vec<Range>, text: &str, n: u64) {
    let last = ranges
        .last_mut()
        .expect("entries with numbers have a range");
    let w = last.width;
    if last.hi.checked_add(1) == Some(n) && format!("{n:0w$}") == text {
        last.hi = n;
    } else {
        ranges.push(Range::single(n, text.len()));
    }
}

/// Split `gpu-017` into (`gpu-`, `017`, 17); `None` when there is no numeric suffix that fits u64.
fn split_number(host: &str) -> Option<(&str, &str, u64)> {
    let prefix = host.trim_end_matches(|c: char| c.is_ascii_digit());
    let text = &host[prefix.len()..];
    Some((prefix, text, text.parse().ok()?))
}

fn join(ranges: &[Range]) -> String {
    ranges
        .iter()
        .map(Range::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;
    use std::collections::BTreeSet;

    fn names(hosts: &str) -> Vec<String> {
        hosts.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn expands_slurm_syntax() {
        let cases = [
            ("node1", "node1"),
            ("a,b,c", "a b c"),
            ("gpu-[01-03,07],cpu5", "gpu-01 gpu-02 gpu-03 gpu-07 cpu5"),
            ("n[1-10]", "n1 n2 n3 n4 n5 n6 n7 n8 n9 n10"),
            ("n[01-10]", "n01 n02 n03 n04 n05 n06 n07 n08 n09 n10"),
            ("n[001-3]", "n001 n002 n003"),
            ("n[8-10]", "n8 n9 n10"),
            ("node[09-11]", "node09 node10 node11"),
            ("n[0-2]", "n0 n1 n2"),
            ("n[7]", "n7"),
            (
                "rack[1-2]-node[01-02]",
                "rack1-node01 rack1-node02 rack2-node01 rack2-node02",
            ),
            ("n[1-2]-ib", "n1-ib n2-ib"),
            ("x[1-2]y[3]z", "x1y3z x2y3z"),
            ("a[1-2],b[3-4]c,d", "a1 a2 b3c b4c d"),
            (" a , b[1-2] ", "a b1 b2"),
            ("n[1, 3 ,5-6]", "n1 n3 n5 n6"),
            ("n[3,1]", "n3 n1"),
            ("n1,n1", "n1 n1"),
            ("n[1-2,1]", "n1 n2 n1"),
            ("[1-3]", "1 2 3"),
            ("10.0.0.[1-2]", "10.0.0.1 10.0.0.2"),
        ];
        for (list, want) in cases {
            assert_eq!(expand(list).unwrap(), names(want), "expanding {list:?}");
        }
    }

    #[test]
    fn malformed_lists_name_the_problem() {
        let cases = [
            ("n[1-3", "unbalanced '['"),
            ("n1-3]", "unbalanced ']'"),
            ("n[[1]]", "nested '['"),
            ("n[1[2]]", "nested '['"),
            ("n[]", "empty brackets"),
            ("n[ ]", "empty brackets"),
            ("n[1,,2]", "empty range"),
            ("n[5-3]", "reversed range '5-3'"),
            ("n[a-b]", "range 'a-b'"),
            ("n[1-]", "range '1-'"),
            ("n[-3]", "range '-3'"),
            ("n[1-2-3]", "range '1-2-3'"),
            ("n[99999999999999999999]", "is not a number"),
            ("a,,b", "empty entry"),
            ("a,", "empty entry"),
            (",a", "empty entry"),
            ("", "the list is empty"),
            ("gpu 1", "whitespace inside host name 'gpu 1'"),
            ("n[0-999999999]", "more than 1000000 hosts"),
            ("a[1-1000]b[1-1001]", "more than 1000000 hosts"),
            ("n[1-600000],m[1-600000]", "more than 1000000 hosts"),
            ("n[0-18446744073709551615]", "more than 1000000 hosts"),
        ];
        for (list, want) in cases {
            let msg = expand(list).unwrap_err().to_string();
            assert!(
                msg.starts_with(&format!("hostlist '{list}' is malformed: ")) && msg.contains(want),
                "expanding {list:?}: got {msg:?}, want it to mention {want:?}"
            );
        }
    }

    #[test]
    fn compresses_to_readable_lists() {
        let cases = [
            ("gpu-01 gpu-02 gpu-03 gpu-07 cpu5", "gpu-[01-03,07],cpu5"),
            ("n8 n9 n10", "n[8-10]"),
            ("n08 n09 n10", "n[08-10]"),
            ("n8 n09", "n[8,09]"),
            ("n1", "n1"),
            ("a b", "a,b"),
            ("n1 n1", "n[1,1]"),
            ("n3 n2 n1", "n[3,2,1]"),
            ("n1-ib n2-ib", "n1-ib,n2-ib"),
            ("", ""),
        ];
        for (hosts, want) in cases {
            assert_eq!(compress(&names(hosts)), want, "compressing {hosts:?}");
        }
    }

    /// A random host: a prefix (possibly ending in a digit), and usually a zero-padded number.
    fn random_host(rng: &mut Xoshiro256PlusPlus, prefixes: &[&str]) -> String {
        let prefix = prefixes[rng.gen_range(0..prefixes.len())];
        if rng.gen_bool(0.1) {
            return format!("{prefix}x");
        }
        let n: u64 = match rng.gen_bool(0.8) {
            true => rng.gen_range(0..40),
            false => rng.gen_range(0..100_000),
        };
        let width = rng.gen_range(0..6);
        format!("{prefix}{n:0width$}")
    }

    #[test]
    fn expand_inverts_compress_on_random_hosts() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(20240601);
        let prefixes = ["n", "gpu-", "rack1-node", "a.b-", "c7", "", "x-y-"];
        for case in 0..500 {
            let count = rng.gen_range(1..60);
            let pool = &prefixes[..rng.gen_range(1..=prefixes.len())];
            let mut hosts: Vec<String> = (0..count).map(|_| random_host(&mut rng, pool)).collect();
            if case % 2 == 0 {
                // Sorted unique, as SLURM prints allocations; odd cases keep order and duplicates.
                hosts = hosts
                    .into_iter()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
            }
            let list = compress(&hosts);
            assert_eq!(
                expand(&list).unwrap(),
                hosts,
                "case {case}: compressed to {list:?}"
            );
        }
    }
}
