//! Static files from a directory (`[[proxy.route]]` with `files = "web"`): pages that use
//! the proxy's streams, served by the proxy so they share its origin.

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};

use crate::body::{self, ProxyBody};

/// Largest file served.
const MAX_FILE: u64 = 16 * 1024 * 1024;

/// The browser client (README "Browser client"), served as `fjord.js` at the top of
/// every files route whose directory has no file of that name, so a page served by the
/// proxy can always load it from `/fjord.js`.
pub const FJORD_JS: &str = include_str!("../assets/fjord.js");

/// Serves `request` from `root`, the route's path prefix `prefix` cut from the path.
pub async fn handle(root: &Path, prefix: &str, request: &Request<Bytes>) -> Response<ProxyBody> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return body::text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.\n");
    }
    let Some(path) = file_path(root, prefix, request.uri().path()) else {
        return body::text(StatusCode::NOT_FOUND, "Not found.\n");
    };
    if path == root.join("fjord.js") && !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        return respond(request, Bytes::from_static(FJORD_JS.as_bytes()), &path);
    }
    let path = if path.is_dir() {
        path.join("index.html")
    } else {
        path
    };
    let too_large = tokio::fs::metadata(&path)
        .await
        .map_or(true, |m| !m.is_file() || m.len() > MAX_FILE);
    if too_large {
        return body::text(StatusCode::NOT_FOUND, "Not found.\n");
    }
    let Ok(contents) = tokio::fs::read(&path).await else {
        return body::text(StatusCode::NOT_FOUND, "Not found.\n");
    };
    respond(request, Bytes::from(contents), &path)
}

/// A file's response, typed by the name's extension.
fn respond(request: &Request<Bytes>, contents: Bytes, path: &Path) -> Response<ProxyBody> {
    let mut response = if request.method() == Method::HEAD {
        Response::new(body::empty())
    } else {
        Response::new(body::full(contents))
    };
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    response
}

/// The file a request path names, or `None` when it would leave `root` (`..`, absolute
/// or percent-encoded separators are refused, not resolved).
fn file_path(root: &Path, prefix: &str, request_path: &str) -> Option<PathBuf> {
    let relative = request_path
        .strip_prefix(prefix.trim_end_matches('/'))
        .unwrap_or(request_path)
        .trim_start_matches('/');
    if relative.contains('%') || relative.contains('\\') {
        return None;
    }
    let relative = Path::new(relative);
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    Some(root.join(relative))
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let root = Path::new("/srv/web");
        assert_eq!(
            file_path(root, "/", "/app.js"),
            Some(PathBuf::from("/srv/web/app.js"))
        );
        assert_eq!(
            file_path(root, "/static/", "/static/css/a.css"),
            Some(PathBuf::from("/srv/web/css/a.css"))
        );
        assert_eq!(file_path(root, "/", "/"), Some(PathBuf::from("/srv/web/")));
        assert_eq!(file_path(root, "/", "/../etc/passwd"), None);
        assert_eq!(file_path(root, "/", "/a/%2e%2e/b"), None);
        assert_eq!(
            file_path(root, "/", "/a/./b"),
            Some(PathBuf::from("/srv/web/a/b"))
        );
    }
}
