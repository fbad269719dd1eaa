//! `fjord token`: mint a client token for direct-mode routes.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use fjord_protocol::token::{issue_client_token, Audience, ChannelPattern, ClientClaims};
use fjord_proxy::keys::signing_key_from_spec;

use crate::config::FjordConfig;

#[derive(Args)]
#[command(
    about = "Print a client token (JWT) granting the given channels",
    after_help = "Example:\n  fjord token -c fjord.toml --channel 'orders.*' --ttl 1h --sub user42"
)]
pub struct TokenArgs {
    /// Configuration file whose `[auth] jwt_key` signs the token.
    #[arg(short, long, default_value = "fjord.toml")]
    config: PathBuf,
    /// A channel the token may read: an exact name or a pattern with `*`. Repeatable.
    #[arg(long = "channel", required = true)]
    channels: Vec<String>,
    /// Lifetime: seconds, or a number with s, m, h or d.
    #[arg(long, default_value = "1h")]
    ttl: String,
    /// Subject (user id) to put in the token.
    #[arg(long)]
    sub: Option<String>,
}

pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    let config = FjordConfig::load(&args.config)?;
    let spec = config
        .auth
        .jwt_key
        .as_deref()
        .ok_or_else(|| anyhow!("{}: [auth] jwt_key is not set", args.config.display()))?;
    let key = signing_key_from_spec(spec, args.config.parent().filter(|p| p != &Path::new("")))
        .map_err(|e| anyhow!("{}: [auth] jwt_key: {e}", args.config.display()))?;
    let ttl = parse_ttl(&args.ttl)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock is before 1970")?
        .as_secs();
    let mut claims = ClientClaims::new(
        args.channels.into_iter().map(ChannelPattern::new).collect(),
        now + ttl.as_secs(),
    );
    claims.sub = args.sub;
    claims.iat = Some(now);
    claims.aud = config.auth.audience.map(Audience::One);
    claims.iss = config.auth.issuer;
    let token = issue_client_token(&claims, &key).map_err(|e| anyhow!("signing: {e}"))?;
    println!("{token}");
    Ok(())
}

/// `90`, `90s`, `15m`, `1h`, `2d`.
fn parse_ttl(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(split) => text.split_at(split),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| anyhow!("--ttl {text:?}: expected a number with s, m, h or d"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => bail!("--ttl {text:?}: unknown unit {unit:?} (use s, m, h or d)"),
    };
    if seconds == 0 {
        bail!("--ttl must be more than zero");
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_ttl("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_ttl("2d").unwrap(), Duration::from_secs(172_800));
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("x").is_err());
    }
}
