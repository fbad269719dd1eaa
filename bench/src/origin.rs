//! `fjord-bench origin`: the tiny GRIP origin used behind GRIP proxies.
//!
//! Every request is answered `200` with `Content-Type: text/event-stream`,
//! `Grip-Hold: stream` and `Grip-Channel: <path without the leading slash>`
//! (query string dropped) and an empty body, so the proxy holds the client
//! connection as an SSE stream subscribed to that channel.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Args;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Debug, Clone, Args)]
pub struct OriginArgs {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
}

/// Builds the GRIP response for a request path.
pub fn grip_response(path: &str) -> Response<Full<Bytes>> {
    let channel = path.trim_start_matches('/');
    let mut resp = Response::new(Full::new(Bytes::new()));
    let h = resp.headers_mut();
    h.insert("content-type", "text/event-stream".parse().expect("static"));
    h.insert("cache-control", "no-cache".parse().expect("static"));
    h.insert("grip-hold", "stream".parse().expect("static"));
    if let Ok(v) = channel.parse() {
        h.insert("grip-channel", v);
    }
    resp
}

async fn handle(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(grip_response(req.uri().path()))
}

pub fn main(args: OriginArgs) -> Result<()> {
    anyhow::ensure!(
        args.listen.ip().is_loopback(),
        "origin must listen on a loopback address"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(args.listen))
}

async fn serve(addr: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("bind {addr}"))?;
    eprintln!("origin: listening on {addr}");
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("origin: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_from_path() {
        let r = grip_response("/news");
        assert_eq!(r.headers()["grip-channel"], "news");
        assert_eq!(r.headers()["grip-hold"], "stream");
        assert_eq!(r.headers()["content-type"], "text/event-stream");
    }
}
