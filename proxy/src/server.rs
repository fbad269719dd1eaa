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
use crate::http1::{serve_connection, ConnectionLimits};
use crate::route::RouteTarget;
use crate::test_origin;

/// Largest request body the public listener accepts.
const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

/// Accepts connections until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
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
        let ctx = Arc::clone(&ctx);
        let limits = ConnectionLimits {
            max_body: MAX_REQUEST_BODY,
        };
        // The handler future is boxed: it is large (origin exchange, holds) but lives
        // only while a request is handled, and an unboxed one would size every
        // connection's task for its largest state for the connection's whole life.
        tokio::spawn(serve_connection(
            stream,
            peer,
            limits,
            move |request, peer| Box::pin(dispatch(Arc::clone(&ctx), request, peer)),
        ));
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
