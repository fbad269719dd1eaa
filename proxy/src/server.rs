//! The public listener: accepts client connections and routes each request (§7.1).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::{self, ProxyBody};
use crate::context::ProxyContext;
use crate::exchange;
use crate::http1::{serve_connection, ConnectionLimits, HEAD_TIMEOUT};
use crate::http2;
use crate::route::RouteTarget;
use crate::test_origin;
use crate::tls::TlsAcceptor;

/// Largest request body the public listener accepts.
const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

/// Accepts connections until `shutdown` turns true; with `tls`, each connection
/// starts with a TLS handshake and speaks HTTP/2 if the client chose it by ALPN;
/// without, a connection that opens with the HTTP/2 preface speaks HTTP/2.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    ctx: Arc<ProxyContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors or a connection reset before accept: keep
                // serving the others, after a breath so a full table can drain.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let limits = ConnectionLimits {
            max_body: MAX_REQUEST_BODY,
        };
        let handler_ctx = Arc::clone(&ctx);
        // The handler future is boxed: it is large (origin exchange, holds) but lives
        // only while a request is handled, and an unboxed one would size every
        // connection's task for its largest state for the connection's whole life.
        let handle =
            move |request, peer| Box::pin(dispatch(Arc::clone(&handler_ctx), request, peer));
        match &tls {
            None => {
                // The connection is served by a task of its own once the protocol is
                // known, so the long-lived task is only the driver's (one future
                // holding both drivers and the sniffing cost every idle HTTP/1
                // connection a third of a kilobyte).
                tokio::spawn(async move {
                    match http2::sniff(&stream).await {
                        http2::Opening::Http1 => {
                            tokio::spawn(serve_connection(stream, peer, limits, handle));
                        }
                        http2::Opening::Http2 => {
                            tokio::spawn(http2::serve_connection(stream, peer, limits, handle));
                        }
                        http2::Opening::Gone => {}
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let ctx = Arc::clone(&ctx);
                tokio::spawn(async move {
                    let Some(stream) = handshake(&acceptor, stream, peer, &ctx).await else {
                        return;
                    };
                    if stream.get_ref().1.alpn_protocol() == Some(http2::ALPN) {
                        http2::serve_connection(stream, peer, limits, handle).await;
                    } else {
                        serve_connection(stream, peer, limits, handle).await;
                    }
                });
            }
        }
    }
}

/// The TLS handshake of one connection, within the time a request head gets. A
/// failure (a plain-HTTP client, a scanner, a client that distrusts the certificate)
/// ends this connection only.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    ctx: &ProxyContext,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    match tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            ctx.metrics.tls_handshake_failures.inc();
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            ctx.metrics.tls_handshake_failures.inc();
            None
        }
    }
}

/// Picks the route for a request and hands it to the route's handler.
async fn dispatch(
    ctx: Arc<ProxyContext>,
    request: Request<Bytes>,
    _peer: SocketAddr,
) -> Response<ProxyBody> {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .map(str::to_owned);
    let is_websocket = request
        .headers()
        .get(http::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let route = {
        let routes = ctx.routes.borrow();
        routes
            .select(host.as_deref(), request.uri().path(), false, is_websocket)
            .cloned()
            .map(Arc::new)
    };
    let Some(route) = route else {
        return body::text(StatusCode::BAD_GATEWAY, "No route for request.\n");
    };
    match &route.target {
        RouteTarget::Origin(_) => exchange::handle(ctx, route, request, false).await,
        RouteTarget::Test => test_origin::handle(ctx, route, request).await,
        RouteTarget::Direct(direct) => {
            let direct = Arc::clone(direct);
            crate::direct::handle(ctx, route, &direct, request).await
        }
        RouteTarget::Files(root) => {
            let prefix = route.condition.path_beg.as_deref().unwrap_or("/");
            crate::files::handle(root, prefix, &request).await
        }
    }
}
