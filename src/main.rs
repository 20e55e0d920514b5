//! The `shardmq` binary: parse the command line, load the configuration, run the pre-flight
//! checks, start one shard per configured core, and stop cleanly on Ctrl-C / SIGTERM.
//!
//! Errors at start-up are printed with what to do about them and exit with status 1 (bad
//! configuration: status 2); nothing here panics on bad input.

use std::process::ExitCode;

use clap::Parser;
use shardmq::cli::{check_report, Cli};
use shardmq_shards::preflight::available_cores;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let check = cli.check;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .init();
    let config = match cli.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shardmq: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let report = check_report(&config);
    if check {
        for line in &report.lines {
            println!("{line}");
        }
        return if report.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    if !report.ok {
        for line in &report.lines {
            eprintln!("shardmq: {line}");
        }
        return ExitCode::FAILURE;
    }
    for line in report.lines.iter().skip(1) {
        tracing::warn!("{line}");
    }
    let available = available_cores();
    let cores = config.shard_cores(&available);
    let management_core = config.management_core(&available);
    let node = config.node.name.clone();
    // Signal handlers first: a SIGTERM as soon as the broker listens must stop it cleanly.
    let stop = shardmq_shards::runtime::ShutdownFlag::new();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, stop.as_arc()) {
            eprintln!("shardmq: cannot install the signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    // SIGHUP: read `acl.file` again.
    let reload = shardmq::broker::mgmt::state::reload_flag();
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, reload) {
        eprintln!("shardmq: cannot install the SIGHUP handler: {e}");
        return ExitCode::FAILURE;
    }
    let broker = match shardmq::broker::start_with_shutdown(config, &cores, management_core, stop) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("shardmq: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        "{node} {} listening for MQTT on {} with {} shards on cores {cores:?}; REST API on {} (core {management_core})",
        shardmq::broker::sys::VERSION,
        broker.mqtt_addr,
        cores.len(),
        broker.http_addr,
    );
    broker.join();
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
