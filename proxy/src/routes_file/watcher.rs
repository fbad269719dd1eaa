//! Reloading a routes file when it changes (§7.1).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{parse_file_bytes, RoutesFileError};
use crate::route::RouteTable;

/// Size and modification time: what the watcher compares between polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    modified: Option<SystemTime>,
    len: u64,
}

impl Fingerprint {
    fn of(meta: &std::fs::Metadata) -> Self {
        Fingerprint {
            modified: meta.modified().ok(),
            len: meta.len(),
        }
    }

    /// On file systems with coarse timestamps a second write within the same tick
    /// leaves size and mtime unchanged (swapping two targets keeps the size), so
    /// for a while after a write the content itself is compared.
    fn is_recent(&self) -> bool {
        const RACY_WINDOW: Duration = Duration::from_secs(2);
        self.modified
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_none_or(|age| age < RACY_WINDOW)
    }
}

/// Keeps a routes file's table current (§7.1: "watched and reloaded about 1 s
/// after a change").
///
/// The file is polled rather than watched with inotify, which needs no extra
/// dependency and also sees files replaced by rename (editors, Kubernetes
/// ConfigMaps). A change is loaded once size and mtime have held still for one
/// poll, so a file caught half-written is not applied; a file that does not parse
/// is logged and the previous table stays in force.
pub struct RoutesWatcher;

impl RoutesWatcher {
    pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

    /// Loads the file (which must succeed) and spawns the polling task on the
    /// current tokio runtime. The task ends when every receiver has been dropped.
    pub fn start(
        path: impl Into<PathBuf>,
    ) -> Result<(watch::Receiver<Arc<RouteTable>>, JoinHandle<()>), RoutesFileError> {
        Self::start_with_interval(path, Self::POLL_INTERVAL)
    }

    /// [`RoutesWatcher::start`] with another poll interval.
    pub fn start_with_interval(
        path: impl Into<PathBuf>,
        interval: Duration,
    ) -> Result<(watch::Receiver<Arc<RouteTable>>, JoinHandle<()>), RoutesFileError> {
        let path = path.into();
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| RoutesFileError::NoRuntime)?;
        let read_error = |error| RoutesFileError::Read {
            path: path.clone(),
            error,
        };
        let fingerprint = Fingerprint::of(&std::fs::metadata(&path).map_err(read_error)?);
        let content = std::fs::read(&path).map_err(read_error)?;
        let table = parse_file_bytes(&path, &content)?;
        log_loaded(&path, &table);
        let (tx, rx) = watch::channel(Arc::new(table));
        let state = WatchState {
            path,
            interval,
            loaded: fingerprint,
            content,
            pending: None,
            unreadable: false,
        };
        let handle = runtime.spawn(state.run(tx));
        Ok((rx, handle))
    }
}

struct WatchState {
    path: PathBuf,
    interval: Duration,
    /// Fingerprint of the content last read (applied or rejected).
    loaded: Fingerprint,
    content: Vec<u8>,
    /// A changed fingerprint seen on the previous poll, waiting to settle.
    pending: Option<Fingerprint>,
    /// Whether the file being unreadable has been logged already.
    unreadable: bool,
}

impl WatchState {
    async fn run(mut self, tx: watch::Sender<Arc<RouteTable>>) {
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
            self.poll(&tx).await;
        }
    }

    async fn poll(&mut self, tx: &watch::Sender<Arc<RouteTable>>) {
        let fingerprint = match tokio::fs::metadata(&self.path).await {
            Ok(meta) => Fingerprint::of(&meta),
            Err(error) => {
                self.pending = None;
                self.log_unreadable(&error);
                return;
            }
        };
        self.unreadable = false;
        if fingerprint != self.loaded {
            if self.pending == Some(fingerprint) {
                self.pending = None;
                self.reload(fingerprint, tx).await;
            } else {
                self.pending = Some(fingerprint);
            }
        } else if fingerprint.is_recent() {
            self.pending = None;
            self.reload(fingerprint, tx).await;
        }
    }

    async fn reload(&mut self, fingerprint: Fingerprint, tx: &watch::Sender<Arc<RouteTable>>) {
        let content = match tokio::fs::read(&self.path).await {
            Ok(content) => content,
            Err(error) => return self.log_unreadable(&error),
        };
        self.loaded = fingerprint;
        if content == self.content {
            return;
        }
        match parse_file_bytes(&self.path, &content) {
            Ok(table) => {
                log_loaded(&self.path, &table);
                tx.send_replace(Arc::new(table));
            }
            Err(error) => {
                tracing::warn!(%error, "routes file not reloaded; keeping the previous routes");
            }
        }
        self.content = content;
    }

    fn log_unreadable(&mut self, error: &std::io::Error) {
        if !self.unreadable {
            self.unreadable = true;
            tracing::warn!(
                path = %self.path.display(),
                %error,
                "cannot read routes file; keeping the previous routes"
            );
        }
    }
}

fn log_loaded(path: &Path, table: &RouteTable) {
    for warning in table.warnings() {
        tracing::warn!(path = %path.display(), "routes file {warning}");
    }
    tracing::info!(path = %path.display(), routes = table.len(), "routes loaded");
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::route::{OriginTarget, RouteTarget};

    fn origins(route: &crate::route::Route) -> &[OriginTarget] {
        match &route.target {
            RouteTarget::Origin(targets) => targets,
            RouteTarget::Test | RouteTarget::Direct(_) | RouteTarget::Files(_) => {
                panic!("not an origin target")
            }
        }
    }

    #[test]
    fn watcher_needs_a_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes");
        std::fs::write(&path, "* a:1\n").unwrap();
        assert!(matches!(
            RoutesWatcher::start(&path),
            Err(RoutesFileError::NoRuntime)
        ));
    }

    #[tokio::test]
    async fn watcher_start_requires_a_good_first_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes");
        let err = RoutesWatcher::start(&path).unwrap_err();
        assert!(matches!(err, RoutesFileError::Read { .. }), "{err}");
        std::fs::write(&path, "* a:1 zhttp/tcp://x:1\n").unwrap();
        let err = RoutesWatcher::start(&path).unwrap_err().to_string();
        assert!(
            !err.contains('\n') && err.contains("line 1, column 7"),
            "{err}"
        );
    }

    fn port_for(rx: &watch::Receiver<Arc<RouteTable>>, path: &str) -> u16 {
        let table = rx.borrow();
        let route = table.select(Some("localhost"), path, false, false).unwrap();
        origins(route)[0].port
    }

    async fn changed_within(
        rx: &mut watch::Receiver<Arc<RouteTable>>,
        limit: Duration,
    ) -> Duration {
        let started = Instant::now();
        tokio::time::timeout(limit, rx.changed())
            .await
            .expect("routes not reloaded in time")
            .unwrap();
        started.elapsed()
    }

    /// §12 #49: swapping the two rules' targets takes effect within 2 s; a broken edit
    /// keeps the routes in force; fixing it applies again.
    #[tokio::test]
    async fn watcher_reloads_item_49_swap_and_survives_broken_edit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes");
        std::fs::write(&path, "*,path_beg=/api o1:8001\n* o0:8000\n").unwrap();
        let (mut rx, handle) = RoutesWatcher::start(&path).unwrap();
        assert_eq!((port_for(&rx, "/api/x"), port_for(&rx, "/x")), (8001, 8000));

        std::fs::write(&path, "*,path_beg=/api o0:8000\n* o1:8001\n").unwrap();
        changed_within(&mut rx, Duration::from_secs(2)).await;
        assert_eq!((port_for(&rx, "/api/x"), port_for(&rx, "/x")), (8000, 8001));

        std::fs::write(&path, "*,path_beg=/api o0:8000\n*,proto=tcp o1:8001\n").unwrap();
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert!(
            !rx.has_changed().unwrap(),
            "a broken file must not replace the routes"
        );
        assert_eq!((port_for(&rx, "/api/x"), port_for(&rx, "/x")), (8000, 8001));

        std::fs::write(&path, "* o2:8002\n").unwrap();
        changed_within(&mut rx, Duration::from_secs(2)).await;
        assert_eq!(port_for(&rx, "/api/x"), 8002);

        drop(rx);
        tokio::time::timeout(Duration::from_secs(2), handle)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn watcher_keeps_routes_while_file_is_missing_and_sees_renamed_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes");
        std::fs::write(&path, "* a:1\n").unwrap();
        let (mut rx, _handle) =
            RoutesWatcher::start_with_interval(&path, Duration::from_millis(50)).unwrap();

        std::fs::remove_file(&path).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!rx.has_changed().unwrap());
        assert_eq!(port_for(&rx, "/"), 1);

        let staged = dir.path().join("routes.new");
        std::fs::write(&staged, "* b:2\n").unwrap();
        std::fs::rename(&staged, &path).unwrap();
        changed_within(&mut rx, Duration::from_secs(2)).await;
        assert_eq!(port_for(&rx, "/"), 2);
    }

    #[tokio::test]
    async fn watcher_ignores_rewrite_with_identical_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes");
        std::fs::write(&path, "* a:1\n").unwrap();
        let (rx, _handle) =
            RoutesWatcher::start_with_interval(&path, Duration::from_millis(50)).unwrap();
        std::fs::write(&path, "* a:1\n").unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!rx.has_changed().unwrap());
    }
}
