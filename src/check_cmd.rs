//! `fjord check`: validate a configuration file and print every problem in it.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use crate::config::ConfigSource;
use crate::validate::{self, Scope, BROKER_PROBE_TIMEOUT};

#[derive(Args)]
#[command(
    about = "Validate a configuration file: print every problem as file:line:column: key: message",
    long_about = "Validate a configuration file without starting anything.\n\n\
        Reports every problem at once (unknown keys, wrong types, relay channel templates \
        that do not compile, unreadable key and routes files, invalid addresses and \
        endpoints), each as `file:line:column: key: message`. A Kafka broker that does \
        not answer is a warning, not an error. Exits 0 when the file is valid, 1 otherwise; \
        `fjord run`, `fjord proxy` and `fjord relay` run the same checks at start.",
    after_help = "Example:\n  fjord check -c fjord.toml"
)]
pub struct CheckArgs {
    /// Configuration file to check.
    #[arg(short, long, default_value = "fjord.toml")]
    config: PathBuf,
    /// Skip the Kafka broker probe (no network access).
    #[arg(long)]
    offline: bool,
}

pub fn run(args: CheckArgs) -> anyhow::Result<()> {
    let mut report = validate::check(&args.config, Scope::Check);
    if !args.offline && report.relay_checked {
        if let (Some(config), Ok(text)) = (&report.config, std::fs::read_to_string(&args.config)) {
            let source = ConfigSource::new(&args.config.display().to_string(), &text);
            report.problems.extend(validate::probe_brokers(
                config,
                &source,
                BROKER_PROBE_TIMEOUT,
            ));
        }
    }
    for problem in &report.problems {
        println!("{problem}");
    }
    let errors = report.errors().count();
    let warnings = report.warnings().count();
    let file = args.config.display();
    if errors > 0 {
        bail!(
            "{file}: {errors} {}, {warnings} {}",
            plural(errors, "error"),
            plural(warnings, "warning")
        );
    }
    let parts = if report.relay_checked {
        "proxy and relay"
    } else {
        "proxy (no [kafka] or [relay] section)"
    };
    println!(
        "{file}: OK ({parts}; {warnings} {})",
        plural(warnings, "warning")
    );
    Ok(())
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}
