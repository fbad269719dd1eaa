//! [`Pushpin`]: a real, unmodified Pushpin (the Debian package) for interoperability
//! tests, run unprivileged from a temporary directory.
//!
//! Debian's `/etc/pushpin/pushpin.conf` wants `/var/run/pushpin`, `/var/log/pushpin`, the
//! fixed ports 7999 and 5560–5563, and a system-wide zurl listening under
//! `/var/run/zurl`. The fixture writes its own `pushpin.conf` instead: rundir and logdir
//! inside the temporary directory, every TCP input on a free loopback port (the command
//! and stats sockets on IPC files in the rundir), and a copy of Pushpin's
//! `internal.conf` whose zurl endpoints point into the rundir, so the runner starts a
//! private zurl next to condure, pushpin-proxy and pushpin-handler. Several fixtures
//! can therefore run side by side, and beside a system Pushpin.
//!
//! The runner leads its own process group; dropping the fixture sends SIGTERM to the
//! group (the runner stops its services), then SIGKILL to whatever is left.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::ports::free_loopback_port;

/// How the suites get Pushpin; printed when it cannot be found.
pub const PUSHPIN_INSTALL_HINT: &str =
    "install Debian's package with `apt-get install -y pushpin` (.ci/run does this), \
     or point FJORD_PUSHPIN_BIN at the `pushpin` runner";

/// How long start-up may take before the fixture gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one readiness probe request may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the runner gets to stop its services after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The zurl endpoints of Debian's `internal.conf`, owned by the system zurl service.
const SYSTEM_ZURL_IPC: &str = "ipc:///var/run/zurl/";

/// Anything that went wrong while starting Pushpin.
#[derive(Debug, thiserror::Error)]
pub enum PushpinError {
    #[error("the pushpin runner was not found: {PUSHPIN_INSTALL_HINT}")]
    BinaryMissing,
    #[error("pushpin's internal.conf was not found at {path}: {PUSHPIN_INSTALL_HINT}")]
    InternalConfMissing { path: PathBuf },
    #[error("could not start pushpin ({binary}): {source}")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("pushpin did not accept connections on {address} within {READY_TIMEOUT:?}; its logs:\n{log}")]
    NotReady { address: SocketAddr, log: String },
    #[error("pushpin exited during start-up ({status}); its logs:\n{log}")]
    Exited {
        status: std::process::ExitStatus,
        log: String,
    },
    #[error("pushpin fixture I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The loopback ports of one Pushpin instance.
#[derive(Debug, Clone, Copy)]
struct Ports {
    /// Public HTTP (condure).
    http: u16,
    /// HTTP control API (`POST /publish/`).
    control: u16,
    /// ZeroMQ PULL publish input (`push_in_spec`).
    pull: u16,
    /// ZeroMQ SUB publish input (`push_in_sub_specs`, bound).
    sub: u16,
}

/// A running Pushpin whose only route sends every request to one origin.
pub struct Pushpin {
    child: Option<Child>,
    ports: Ports,
    dir: TempDir,
}

impl Pushpin {
    /// Starts Pushpin with the routes line `* <origin>` and waits until its control,
    /// PULL and SUB ports accept connections and a request to its HTTP port gets an HTTP
    /// response from the origin route (condure listens before pushpin-proxy is connected
    /// to it, and pushpin-proxy answers 500 until pushpin-handler takes its requests).
    /// The probe is `GET /fjord-ready-probe`; it reaches the origin if that is up, and
    /// Pushpin's 502 when it is not counts as ready too. Blocking (it sleeps while it waits); call it from
    /// `spawn_blocking` in async tests.
    pub fn start(origin: SocketAddr) -> Result<Self, PushpinError> {
        let binary = find_binary().ok_or(PushpinError::BinaryMissing)?;
        let dir = tempfile::Builder::new()
            .prefix("fjord-pushpin-")
            .tempdir()?;
        let ports = Ports {
            http: free_loopback_port()?,
            control: free_loopback_port()?,
            pull: free_loopback_port()?,
            sub: free_loopback_port()?,
        };
        let config = write_config(&binary, dir.path(), ports, origin)?;
        let log = std::fs::File::create(dir.path().join("pushpin.log"))?;
        let child = Command::new(&binary)
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|source| PushpinError::Spawn {
                binary: binary.clone(),
                source,
            })?;
        let mut pushpin = Pushpin {
            child: Some(child),
            ports,
            dir,
        };
        pushpin.wait_until_ready()?;
        Ok(pushpin)
    }

    /// Where clients connect (`http_port`).
    pub fn http_addr(&self) -> SocketAddr {
        loopback(self.ports.http)
    }

    /// The HTTP control API; publishes go to `POST /publish/` here.
    pub fn control_addr(&self) -> SocketAddr {
        loopback(self.ports.control)
    }

    /// The ZeroMQ PULL socket publishers connect a PUSH socket to (`push_in_spec`).
    pub fn pull_endpoint(&self) -> String {
        format!("tcp://{}", loopback(self.ports.pull))
    }

    /// The bound ZeroMQ SUB socket publishers connect a PUB socket to
    /// (`push_in_sub_specs`).
    pub fn sub_endpoint(&self) -> String {
        format!("tcp://{}", loopback(self.ports.sub))
    }

    /// The configuration directory (pushpin.conf, routes, run/, log/).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The runner's output and the last lines of each service's log, for failure
    /// messages.
    pub fn log_tail(&self) -> String {
        let mut files = vec![self.dir.path().join("pushpin.log")];
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join("log")) {
            let mut logs: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            logs.sort();
            files.extend(logs);
        }
        let mut out = String::new();
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(20)..];
            out.push_str(&format!("== {}\n{}\n", file.display(), tail.join("\n")));
        }
        out
    }

    /// An error with the log tail if the runner process has already exited.
    fn fail_if_exited(&mut self) -> Result<(), PushpinError> {
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                self.stop();
                return Err(PushpinError::Exited {
                    status,
                    log: self.log_tail(),
                });
            }
        }
        Ok(())
    }

    fn wait_until_ready(&mut self) -> Result<(), PushpinError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let ports = self.ports;
        for port in [ports.http, ports.control, ports.pull, ports.sub] {
            let address = loopback(port);
            loop {
                self.fail_if_exited()?;
                if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    let log = self.log_tail();
                    self.stop();
                    return Err(PushpinError::NotReady { address, log });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        loop {
            if self.answers_http() {
                return Ok(());
            }
            self.fail_if_exited()?;
            if Instant::now() > deadline {
                let log = self.log_tail();
                self.stop();
                return Err(PushpinError::NotReady {
                    address: self.http_addr(),
                    log,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether one probe request gets an HTTP response other than pushpin-proxy's own
    /// `500 Accept service unavailable.` (its link to pushpin-handler is not up yet).
    fn answers_http(&self) -> bool {
        let probe = || -> std::io::Result<bool> {
            let mut stream = TcpStream::connect_timeout(&self.http_addr(), PROBE_TIMEOUT)?;
            stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
            stream.write_all(
                b"GET /fjord-ready-probe HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )?;
            let mut response = Vec::new();
            let mut buf = [0u8; 512];
            // The head, and for a 500 the short body too (Pushpin closes after it).
            loop {
                let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
                let head_done = text.contains("\r\n\r\n");
                if head_done && !text.starts_with("http/1.1 500") {
                    return Ok(text.starts_with("http/1."));
                }
                if text.contains("service unavailable") || response.len() > 4096 {
                    return Ok(false);
                }
                let n = stream.read(&mut buf)?;
                if n == 0 {
                    // A 500 of the origin's own, passed through: Pushpin is ready.
                    return Ok(head_done);
                }
                response.extend_from_slice(&buf[..n]);
            }
        };
        probe().unwrap_or(false)
    }

    /// SIGTERM to the runner's process group, a grace period, then SIGKILL to the
    /// group (services the runner did not stop, or orphans of a runner that died).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let Ok(group) = libc::pid_t::try_from(child.id()) else {
            let _ = child.kill();
            let _ = child.wait();
            return;
        };
        // SAFETY: signals the process group this fixture created (`process_group(0)`
        // made the runner its leader); no memory is touched.
        unsafe { libc::kill(-group, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = child.wait();
    }
}

impl Drop for Pushpin {
    fn drop(&mut self) {
        self.stop();
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Writes `internal.conf`, `routes` and `pushpin.conf` into `dir`; returns the path of
/// `pushpin.conf`. Settings not named here keep Pushpin's defaults.
fn write_config(
    binary: &Path,
    dir: &Path,
    ports: Ports,
    origin: SocketAddr,
) -> Result<PathBuf, PushpinError> {
    let internal_path = internal_conf(binary);
    let internal =
        std::fs::read_to_string(&internal_path).map_err(|_| PushpinError::InternalConfMissing {
            path: internal_path.clone(),
        })?;
    let internal = internal.replace(SYSTEM_ZURL_IPC, "ipc://{rundir}/{ipc_prefix}");
    std::fs::write(dir.join("internal.conf"), internal)?;
    std::fs::write(dir.join("routes"), format!("* {origin}\n"))?;
    std::fs::create_dir_all(dir.join("run"))?;
    std::fs::create_dir_all(dir.join("log"))?;
    let d = dir.display();
    let Ports {
        http,
        control,
        pull,
        sub,
    } = ports;
    let conf = format!(
        "[global]\n\
         include={d}/internal.conf\n\
         rundir={d}/run\n\
         ipc_prefix=pushpin-\n\
         port_offset=0\n\
         \n\
         [runner]\n\
         services=condure,zurl,pushpin-proxy,pushpin-handler\n\
         http_port=127.0.0.1:{http}\n\
         logdir={d}/log\n\
         log_level=2\n\
         condure_bin=condure\n\
         zurl_bin=zurl\n\
         \n\
         [proxy]\n\
         routesfile=routes\n\
         sig_iss=pushpin\n\
         sig_key=changeme\n\
         updates_check=off\n\
         \n\
         [handler]\n\
         push_in_spec=tcp://127.0.0.1:{pull}\n\
         push_in_sub_specs=tcp://127.0.0.1:{sub}\n\
         push_in_sub_connect=false\n\
         push_in_http_addr=127.0.0.1\n\
         push_in_http_port={control}\n\
         stats_spec=ipc://{{rundir}}/{{ipc_prefix}}stats\n\
         command_spec=ipc://{{rundir}}/{{ipc_prefix}}command\n"
    );
    let path = dir.join("pushpin.conf");
    std::fs::write(&path, conf)?;
    Ok(path)
}

/// Pushpin's `internal.conf`, in the lib directory beside the runner's bin directory
/// (`/usr/bin/pushpin` → `/usr/lib/pushpin/internal.conf`).
fn internal_conf(binary: &Path) -> PathBuf {
    let binary = std::fs::canonicalize(binary).unwrap_or_else(|_| binary.to_path_buf());
    let prefix = binary
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/usr"));
    prefix.join("lib/pushpin/internal.conf")
}

/// Where the runner is: `FJORD_PUSHPIN_BIN`, then `pushpin` on `PATH`.
fn find_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FJORD_PUSHPIN_BIN") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join("pushpin"))
        .find(|candidate| candidate.is_file())
}
