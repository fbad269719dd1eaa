//! `fjord publish`: publish one item to a proxy, for scripts and smoke tests.

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use clap::Args;
use fjord_protocol::item::{
    Formats, HttpResponseFormat, HttpStreamFormat, PublishItem, ResponseAction, ResponseBody,
    ResponseMessage, StreamAction,
};
use fjord_protocol::sse::SseEvent;
use fjord_protocol::zmq::{encode_pull_frame, PullEncoding};
use fjord_proxy::zmtp::{handshake, Endpoint, SocketType};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Args)]
#[command(
    about = "Publish one item to a proxy's control API (or its ZeroMQ PULL socket)",
    after_help = "Examples:\n  fjord publish --channel orders.42 --event status '{\"state\":\"cooking\"}'\n  \
                  fjord publish --channel test --zmq tcp://127.0.0.1:5560 hello"
)]
pub struct PublishArgs {
    /// Channel to publish to.
    #[arg(long)]
    channel: String,
    /// SSE event name of the streamed event.
    #[arg(long)]
    event: Option<String>,
    /// Item id (also the SSE `id:`).
    #[arg(long)]
    id: Option<String>,
    /// Send DATA as it is to streams instead of as an SSE event.
    #[arg(long)]
    raw: bool,
    /// The proxy's control API.
    #[arg(long, default_value = "http://127.0.0.1:5561")]
    control: String,
    /// Publish over ZeroMQ PUSH to this PULL endpoint instead of HTTP.
    #[arg(long)]
    zmq: Option<String>,
    /// The data: a stream hold gets it as an SSE event (or raw), a long-poll as its body.
    data: String,
}

pub fn run(args: PublishArgs) -> anyhow::Result<()> {
    let item = build_item(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        match &args.zmq {
            Some(endpoint) => publish_zmq(endpoint, &item).await,
            None => publish_http(&args.control, &item).await,
        }
    })
}

fn build_item(args: &PublishArgs) -> anyhow::Result<PublishItem> {
    let content = if args.raw {
        Bytes::from(args.data.clone())
    } else {
        let mut event = SseEvent::new(args.data.as_str());
        if let Some(name) = &args.event {
            event = event.with_event(name);
        }
        if let Some(id) = &args.id {
            event = event.with_id(id);
        }
        event
            .to_bytes()
            .map_err(|e| anyhow!("cannot encode the event: {e}"))?
    };
    let formats = Formats {
        http_stream: Some(HttpStreamFormat {
            action: StreamAction::Send(content),
            content_filters: Vec::new(),
        }),
        http_response: Some(HttpResponseFormat {
            action: ResponseAction::Send(ResponseMessage {
                code: 200,
                reason: None,
                headers: Vec::new(),
                body: ResponseBody::Bytes(Bytes::from(args.data.clone())),
            }),
            content_filters: Vec::new(),
        }),
        ws_message: None,
    };
    let mut item = PublishItem::new(args.channel.clone(), formats);
    item.id = args.id.clone();
    Ok(item)
}

async fn publish_http(control: &str, item: &PublishItem) -> anyhow::Result<()> {
    let url = format!("{}/publish/", control.trim_end_matches('/'));
    let body = serde_json::json!({ "items": [item.to_json()] }).to_string();
    let request = http::Request::post(&url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .with_context(|| format!("bad control URL {url}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .request(request)
        .await
        .with_context(|| format!("cannot reach the control API at {url}"))?;
    let status = response.status();
    let text = response
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_owned())
        .unwrap_or_default();
    if !status.is_success() {
        bail!("{url} answered {status}: {text}");
    }
    println!("{text}");
    Ok(())
}

async fn publish_zmq(endpoint: &str, item: &PublishItem) -> anyhow::Result<()> {
    let Endpoint::Tcp { host, port } = Endpoint::parse(endpoint)? else {
        bail!("--zmq: only tcp:// endpoints are supported here");
    };
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .with_context(|| format!("cannot connect to {endpoint}"))?;
    let (read, write) = stream.into_split();
    let mut connection = handshake(Box::new(read), Box::new(write), SocketType::Push, 1 << 20)
        .await
        .with_context(|| format!("ZeroMQ handshake with {endpoint}"))?;
    let frame = encode_pull_frame(item, PullEncoding::Tnetstring);
    connection
        .writer
        .send_message(&[&frame])
        .await
        .with_context(|| format!("sending to {endpoint}"))?;
    drop(connection);
    println!("Published");
    Ok(())
}
