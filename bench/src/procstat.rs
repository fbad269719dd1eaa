//! Resource accounting from /proc for a whole process tree (a server's
//! supervisor plus everything it started: pushpin's condure, zurl, proxy and
//! handler; nginx's master and workers).

use std::collections::HashMap;
use std::fs;

use anyhow::{Context, Result};
use serde::Serialize;

/// Totals over every live process in the tree.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Sample {
    pub processes: usize,
    /// Sum of resident set sizes (shared pages counted once per process).
    pub rss_kb: u64,
    /// Sum of proportional set sizes (shared pages split between sharers).
    pub pss_kb: u64,
    /// User + system CPU time consumed so far by the live processes.
    pub cpu_s: f64,
}

struct Stat {
    ppid: u32,
    cpu_ticks: u64,
    rss_pages: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: split after the
    // last ')'. Remaining fields start at field 3 (state).
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
    Some(Stat {
        ppid: num(1)? as u32,
        cpu_ticks: num(11)? + num(12)?,
        rss_pages: num(21)?,
    })
}

fn read_pss_kb(pid: u32) -> u64 {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `root` and all of its descendants that are alive now.
pub fn tree(root: u32) -> Result<Vec<u32>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in fs::read_dir("/proc").context("read /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some(st) = read_stat(pid) {
            children.entry(st.ppid).or_default().push(pid);
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            out.extend(kids);
        }
        i += 1;
    }
    Ok(out)
}

/// Samples RSS, PSS and CPU time of `root` and its descendants.
pub fn sample(root: u32) -> Result<Sample> {
    sample_pids(&tree(root)?)
}

/// Samples exactly the given processes (no descendants).
pub fn sample_pids(pids: &[u32]) -> Result<Sample> {
    // SAFETY: sysconf has no preconditions.
    let (tck, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK).max(1) as f64,
            libc::sysconf(libc::_SC_PAGESIZE).max(1) as u64,
        )
    };
    let mut s = Sample::default();
    for &pid in pids {
        let Some(st) = read_stat(pid) else { continue };
        s.processes += 1;
        s.rss_kb += st.rss_pages * page / 1024;
        s.pss_kb += read_pss_kb(pid);
        s.cpu_s += st.cpu_ticks as f64 / tck;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_self() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.processes >= 1);
        assert!(s.rss_kb > 0);
    }
}
