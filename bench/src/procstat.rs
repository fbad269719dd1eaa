//! Resource accounting from /proc for a whole process tree (a server's
//! supervisor plus everything it started: pushpin's condure, zurl, proxy and
//! handler; nginx's master and workers).

use std::collections::HashMap;
use std::fs;
use std::path::Path;

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
    read_stat_at(Path::new(&format!("/proc/{pid}/stat")))
}

/// Parses a `stat` file: a process's, or a thread's (`/proc/P/task/T/stat`).
fn read_stat_at(path: &Path) -> Option<Stat> {
    let text = fs::read_to_string(path).ok()?;
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

fn clock_ticks_and_page_size() -> (f64, u64) {
    // SAFETY: sysconf has no preconditions.
    unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK).max(1) as f64,
            libc::sysconf(libc::_SC_PAGESIZE).max(1) as u64,
        )
    }
}

/// Samples exactly the given processes (no descendants).
pub fn sample_pids(pids: &[u32]) -> Result<Sample> {
    let (tck, page) = clock_ticks_and_page_size();
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

/// CPU time of the threads of `pid` named `name` (their `comm`). Threads
/// share their process's memory, so `rss_kb`, `pss_kb` and `processes` stay 0.
pub fn sample_threads(pid: u32, name: &str) -> Result<Sample> {
    let (tck, _) = clock_ticks_and_page_size();
    let mut s = Sample::default();
    for entry in fs::read_dir(format!("/proc/{pid}/task")).context("read /proc/<pid>/task")? {
        let Ok(entry) = entry else { continue };
        let dir = entry.path();
        let named = fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.trim_end() == name);
        if !named {
            continue;
        }
        if let Some(st) = read_stat_at(&dir.join("stat")) {
            s.cpu_s += st.cpu_ticks as f64 / tck;
        }
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

    #[test]
    fn thread_sample_counts_only_the_named_thread() {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spinner = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("procstat-spin".into())
                .spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
                .unwrap()
        };
        std::thread::sleep(std::time::Duration::from_millis(300));
        let busy = sample_threads(std::process::id(), "procstat-spin").unwrap();
        let absent = sample_threads(std::process::id(), "no-such-thread").unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        spinner.join().unwrap();
        assert!(busy.cpu_s > 0.0, "{busy:?}");
        assert_eq!(absent.cpu_s, 0.0);
        assert_eq!(busy.rss_kb, 0);
    }
}
