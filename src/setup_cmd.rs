//! `fjord setup`: write a commented `fjord.toml` and a fresh client-token signing key.
//!
//! The key goes to its own file (`fjord.key`, owner-readable only) rather than into the
//! config, so the config can be shared, reviewed and committed without the secret.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use clap::Args;

/// The commented configuration; see the file for what every key does.
pub const TEMPLATE: &str = include_str!("setup_template.toml");
/// Name of the generated configuration file.
pub const CONFIG_FILE: &str = "fjord.toml";
/// Name of the generated key file, as the template's `jwt_key = "file:fjord.key"` names it.
pub const KEY_FILE: &str = "fjord.key";
/// Bytes of the HS256 secret: SHA-256's block-sized security level.
const KEY_BYTES: usize = 32;

#[derive(Args)]
#[command(
    about = "Write a commented fjord.toml and a freshly generated signing key (fjord.key)",
    long_about = "Write DIR/fjord.toml, a commented configuration covering every section \
        with each key's default and what it does, and DIR/fjord.key, a fresh random \
        HS256 secret (32 bytes from the operating system) that signs client tokens. \
        Existing files are left alone unless --force is given.",
    after_help = "Example:\n  fjord setup /etc/fjord && fjord check -c /etc/fjord/fjord.toml"
)]
pub struct SetupArgs {
    /// Directory to write into (created if missing).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Overwrite fjord.toml and fjord.key if they exist (the old key stops verifying
    /// tokens signed with it).
    #[arg(long)]
    force: bool,
}

pub fn run(args: SetupArgs) -> anyhow::Result<()> {
    let config_path = args.dir.join(CONFIG_FILE);
    let key_path = args.dir.join(KEY_FILE);
    if !args.force {
        for path in [&config_path, &key_path] {
            if path.exists() {
                bail!(
                    "{} already exists; pass --force to overwrite it",
                    path.display()
                );
            }
        }
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let key = generate_key_hex()?;
    write_file(&key_path, format!("{key}\n").as_bytes(), 0o600, args.force)?;
    write_file(&config_path, TEMPLATE.as_bytes(), 0o644, args.force)?;
    println!(
        "wrote {} and {} (the client-token signing key; keep it private)",
        config_path.display(),
        key_path.display()
    );
    println!(
        "next: edit [kafka] and [[relay.stream]], then\n  fjord check -c {0}\n  fjord run -c {0}",
        config_path.display()
    );
    Ok(())
}

/// 32 random bytes from the operating system, hex-encoded: the `file:` key format
/// (§1.3) for an HS256 secret.
fn generate_key_hex() -> anyhow::Result<String> {
    let mut secret = [0u8; KEY_BYTES];
    getrandom::getrandom(&mut secret)
        .map_err(|e| anyhow!("cannot read random bytes from the operating system: {e}"))?;
    Ok(secret.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `contents`; without `overwrite` the file must not exist yet, checked at the
/// moment of creation so that a file appearing meanwhile is not clobbered either.
fn write_file(path: &Path, contents: &[u8], mode: u32, overwrite: bool) -> anyhow::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => anyhow!(
            "{} already exists; pass --force to overwrite it",
            path.display()
        ),
        _ => anyhow!("cannot write {}: {e}", path.display()),
    })?;
    #[cfg(unix)]
    if overwrite {
        // `mode` applies only to new files; an overwritten key must not stay readable.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set permissions of {}", path.display()))?;
    }
    file.write_all(contents)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigSource;
    use crate::validate::{check_source, Scope};

    #[test]
    fn generated_keys_are_64_hex_digits_and_differ() {
        let a = generate_key_hex().expect("random");
        let b = generate_key_hex().expect("random");
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn the_template_validates_next_to_a_key_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(KEY_FILE), "00ff".repeat(16)).expect("key");
        let source = ConfigSource::new("fjord.toml", TEMPLATE);
        let report = check_source(&source, Some(dir.path()), Scope::Check);
        let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(report.relay_checked);
    }

    /// The commented-out examples are documentation a reader will uncomment; each must
    /// stay a valid configuration.
    #[test]
    fn every_commented_example_key_is_valid_when_uncommented() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(KEY_FILE), "00ff".repeat(16)).expect("key");
        std::fs::write(dir.path().join("routes"), "* localhost:8080\n").expect("routes");
        std::fs::create_dir(dir.path().join("web")).expect("web");
        let tls = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
        std::fs::write(dir.path().join("fullchain.pem"), tls.cert.pem()).expect("cert");
        std::fs::write(dir.path().join("key.pem"), tls.key_pair.serialize_pem()).expect("key");
        let uncommented = uncomment_examples(TEMPLATE).replace("\"…\"", "\"secret\"");
        let source = ConfigSource::new("fjord.toml", &uncommented);
        let report = check_source(&source, Some(dir.path()), Scope::Check);
        let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        assert!(problems.is_empty(), "{problems:#?}\n{uncommented}");
        let config = report.config.expect("parses");
        assert_eq!(config.proxy.route.len(), 3);
        assert!(config.proxy.replay.is_some());
        assert!(config.proxy.tls_cert.is_some() && config.proxy.tls_key.is_some());
        assert!(config.relay.stream[0].filter.is_some());
        assert!(config.auth.issuer.is_some());
    }

    /// `# key = value` lines become `key = value`; prose comments stay.
    fn uncomment_examples(text: &str) -> String {
        let mut out = String::new();
        for line in text.lines() {
            let example = line.strip_prefix("# ").filter(|rest| {
                let head = rest.split('=').next().unwrap_or("");
                rest.contains(" = ")
                    && !head.trim().is_empty()
                    && !head.trim().contains(' ')
                    && !rest.starts_with("  ")
                    || rest.starts_with("[[")
            });
            match example {
                Some(rest) => out.push_str(rest),
                None => out.push_str(line),
            }
            out.push('\n');
        }
        out
    }
}
