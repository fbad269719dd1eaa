//! The `fjord` processes one Kafka scenario starts (a `fjord run`, or proxies and a
//! relay), each logging to `<name>.log` in the scenario's directory: spawning them,
//! waiting until their health endpoints answer, noticing one that died, and the
//! tails of their logs for error messages.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::child::GroupChild;
use crate::kafka_sut::http_get;

struct Member {
    name: String,
    child: GroupChild,
}

/// Started processes; dropping the group stops them.
pub struct FjordGroup {
    members: Vec<Member>,
    log_dir: PathBuf,
}

impl FjordGroup {
    pub fn new(log_dir: &Path) -> FjordGroup {
        FjordGroup {
            members: Vec::new(),
            log_dir: log_dir.to_path_buf(),
        }
    }

    /// Spawns `cmd` in its own process group, logging to `<name>.log`.
    pub fn spawn(&mut self, name: &str, cmd: &mut Command) -> Result<()> {
        let log = self.log_dir.join(format!("{name}.log"));
        let child = GroupChild::spawn(name, cmd, &log)?;
        self.members.push(Member {
            name: name.to_owned(),
            child,
        });
        Ok(())
    }

    /// Every process by name, in start order.
    pub fn members(&self) -> impl Iterator<Item = (&str, &GroupChild)> {
        self.members.iter().map(|m| (m.name.as_str(), &m.child))
    }

    /// Waits until each `GET path` on `addr` answers 200, failing with the log tails
    /// when a process dies or `within` passes.
    pub async fn wait_ready(
        &mut self,
        checks: &[(SocketAddr, &str)],
        within: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + within;
        for &(addr, path) in checks {
            if let Err(e) = self.wait_ok(addr, path, deadline).await {
                bail!("fjord did not become ready: {e:#}\n{}", self.log_tail());
            }
        }
        Ok(())
    }

    async fn wait_ok(&mut self, addr: SocketAddr, path: &str, deadline: Instant) -> Result<()> {
        loop {
            self.check_alive()?;
            if http_get(addr, path).await.ok().map(|r| r.0) == Some(200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{addr}{path} never answered 200");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn check_alive(&mut self) -> Result<()> {
        for m in &mut self.members {
            m.child.check_alive()?;
        }
        Ok(())
    }

    /// Last lines of every process's log.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for m in &self.members {
            let path = self.log_dir.join(format!("{}.log", m.name));
            if let Ok(text) = std::fs::read_to_string(&path) {
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(8)..];
                out.push_str(&format!("== {}\n{}\n", path.display(), tail.join("\n")));
            }
        }
        out
    }
}
