//! Everything the demo prepares before it starts: a working directory with the page and
//! a real `fjord.toml` (the same file format `fjord run` reads — the demo is `fjord run`
//! with its own Kafka and data), a fresh signing key, and a client token for the page.

use std::fmt::Write as _;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use fjord_protocol::token::{issue_client_token, Audience, ChannelPattern, ClientClaims};
use fjord_proxy::keys::signing_key_from_spec;

use crate::config::FjordConfig;

/// The page, its script and style, written into the working directory's `web/`.
const PAGE_FILES: [(&str, &str); 3] = [
    ("index.html", include_str!("assets/index.html")),
    ("demo.js", include_str!("assets/demo.js")),
    ("demo.css", include_str!("assets/demo.css")),
];

/// How long the page's token lives; the demo is meant to be watched, not run for days.
pub const TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// Addresses and Kafka the demo runs with.
pub struct DemoSettings {
    pub listen: SocketAddr,
    pub control: SocketAddr,
    pub relay_control: SocketAddr,
    pub bootstrap: String,
    /// The embedded cluster starts empty, so reading from the beginning loses nothing;
    /// on a real broker the demo starts at the end and leaves older data alone.
    pub from_beginning: bool,
}

/// The demo's directory under the system temp dir, removed when dropped.
pub struct DemoDir {
    root: PathBuf,
}

impl DemoDir {
    pub fn create() -> anyhow::Result<DemoDir> {
        let root = std::env::temp_dir().join(format!("fjord-demo-{}", std::process::id()));
        std::fs::create_dir_all(root.join("web"))
            .with_context(|| format!("creating {}", root.display()))?;
        Ok(DemoDir { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn web(&self) -> PathBuf {
        self.root.join("web")
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("fjord.toml")
    }

    /// Writes the page; `token` goes into `demo-config.js`, which the page reads, so the
    /// plain URL works (a `?token=` in the URL takes precedence).
    pub fn write_page(&self, token: &str, tick: Duration) -> anyhow::Result<()> {
        let web = self.web();
        for (name, text) in PAGE_FILES {
            write(&web.join(name), text)?;
        }
        let config = serde_json::json!({ "token": token, "tickMs": tick.as_millis() as u64 });
        write(
            &web.join("demo-config.js"),
            &format!("window.FJORD_DEMO = {config};\n"),
        )
    }
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A 256-bit HS256 secret from the operating system's random source, hex-encoded.
pub fn fresh_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for a signing key")?;
    Ok(bytes.iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    }))
}

/// The demo's `fjord.toml`: direct routes for orders and drivers, the page as static
/// files, the relay's two streams.
pub fn config_text(settings: &DemoSettings, web: &Path, secret: &str) -> String {
    let reset = if settings.from_beginning {
        "earliest"
    } else {
        "latest"
    };
    format!(
        r#"# Written by `fjord demo`; the same file works with `fjord run -c`.

[proxy]
listen   = "{listen}"
control  = "{control}"
zmq_pull = ""
zmq_sub  = ""

# A customer's order: /orders/2235407 streams channel orders.2235407;
# /orders/all is the dashboard of every order.
[[proxy.route]]
path        = "/orders/{{id}}"
channel     = "orders.{{id}}"
stream      = "orders"
auth        = "token"
on_overflow = "resume"

# Driver positions: a map only needs the newest one per driver.
[[proxy.route]]
path        = "/drivers/{{id}}"
channel     = "drivers.{{id}}"
stream      = "drivers"
auth        = "token"
on_overflow = "conflate"

[[proxy.route]]
path  = "/"
files = {web}

[auth]
jwt_key  = "{secret}"
audience = "fjord"

[kafka]
"bootstrap.servers" = "{bootstrap}"
"group.id"          = "fjord-demo"
"auto.offset.reset" = "{reset}"

[relay]
control = "{relay_control}"

[[relay.stream]]
name     = "orders"
topic    = "orders"
channels = ["orders.{{key}}", "orders.all"]
event    = "order"

[[relay.stream]]
name     = "drivers"
topic    = "drivers"
channels = ["drivers.{{key}}", "drivers.all"]
event    = "driver"
"#,
        listen = settings.listen,
        control = settings.control,
        relay_control = settings.relay_control,
        bootstrap = settings.bootstrap,
        web = toml_string(&web.display().to_string()),
    )
}

/// A TOML basic string (quotes and backslashes escaped), for paths.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// A client token granting every order and driver channel, signed with the config's key
/// exactly as `fjord token` signs it.
pub fn mint_page_token(config: &FjordConfig, base_dir: &Path) -> anyhow::Result<String> {
    let spec = config
        .auth
        .jwt_key
        .as_deref()
        .ok_or_else(|| anyhow!("demo config has no [auth] jwt_key"))?;
    let key = signing_key_from_spec(spec, Some(base_dir)).map_err(|e| anyhow!("jwt_key: {e}"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock is before 1970")?
        .as_secs();
    let mut claims = ClientClaims::new(
        vec![
            ChannelPattern::new("orders.*"),
            ChannelPattern::new("drivers.*"),
        ],
        now + TOKEN_TTL.as_secs(),
    );
    claims.iat = Some(now);
    claims.sub = Some("demo-page".to_owned());
    claims.aud = config.auth.audience.clone().map(Audience::One);
    claims.iss = config.auth.issuer.clone();
    issue_client_token(&claims, &key).map_err(|e| anyhow!("signing the page token: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DemoSettings {
        DemoSettings {
            listen: "127.0.0.1:7999".parse().expect("addr"),
            control: "127.0.0.1:5561".parse().expect("addr"),
            relay_control: "127.0.0.1:5571".parse().expect("addr"),
            bootstrap: "127.0.0.1:9092".to_owned(),
            from_beginning: true,
        }
    }

    #[test]
    fn secrets_are_fresh_256_bit_hex() {
        let (a, b) = (fresh_secret().expect("a"), fresh_secret().expect("b"));
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn paths_with_quotes_and_backslashes_stay_one_toml_string() {
        let text = config_text(&settings(), Path::new("/tmp/a \"b\"\\c"), "k");
        let parsed: toml::Value = toml::from_str(&text).expect("valid TOML");
        let routes = parsed["proxy"]["route"].as_array().expect("routes");
        assert_eq!(routes[2]["files"].as_str(), Some("/tmp/a \"b\"\\c"));
    }

    #[test]
    fn the_demo_config_is_a_valid_fjord_toml_and_its_token_is_signed() {
        let dir = DemoDir::create().expect("dir");
        let text = config_text(&settings(), &dir.web(), &fresh_secret().expect("secret"));
        let config = FjordConfig::parse(&text, "fjord.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.relay.stream.len(), 2);
        let token = mint_page_token(&config, dir.root()).expect("token");
        assert_eq!(token.split('.').count(), 3, "{token}");
    }
}
