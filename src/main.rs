//! The `fjord` command line: a thin layer over the proxy, relay and protocol crates.

mod check_cmd;
mod config;
mod demo;
mod demo_cmd;
mod proxy_cmd;
mod publish_cmd;
mod relay_cmd;
mod route_config;
mod run_cmd;
mod setup_cmd;
mod token_cmd;
mod validate;

use std::process::ExitCode;

/// jemalloc rather than the system allocator: with glibc's, `malloc`/`free` (with
/// `malloc_consolidate` walking fast bins whenever a publish body is allocated) were
/// 11 % of the proxy's CPU in the many-channel fan-out benchmark; jemalloc used 16 %
/// less CPU per delivery there (median of five A/B runs) and 4 % less memory per idle
/// connection (bench/RESULTS.md, 2026-12-06 08:50 UTC). mimalloc saved as much CPU
/// but held 12 % more memory per connection.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::{Parser, Subcommand, ValueEnum};

/// Stream Kafka topics to browsers and phones: a Pushpin-compatible GRIP proxy.
#[derive(Parser)]
#[command(name = "fjord", version, about, propagate_version = true)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    Run(run_cmd::RunArgs),
    Proxy(proxy_cmd::ProxyArgs),
    Relay(relay_cmd::RelayArgs),
    Token(token_cmd::TokenArgs),
    Publish(publish_cmd::PublishArgs),
    Setup(setup_cmd::SetupArgs),
    Check(check_cmd::CheckArgs),
    Demo(demo_cmd::DemoArgs),
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Run(args) => run_cmd::run(args),
        Command::Proxy(args) => proxy_cmd::run(args),
        Command::Relay(args) => relay_cmd::run(args),
        Command::Token(args) => token_cmd::run(args),
        Command::Publish(args) => publish_cmd::run(args),
        Command::Setup(args) => setup_cmd::run(args),
        Command::Check(args) => check_cmd::run(args),
        Command::Demo(args) => demo_cmd::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line per problem: a config error lists each of its problems.
            for line in format!("{e:#}").lines() {
                eprintln!("fjord: {line}");
            }
            ExitCode::FAILURE
        }
    }
}
