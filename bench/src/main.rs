//! The `shardmq-bench` binary: parse options, run, print the summary, write the files.
//!
//! Exit status: 0 on success, 1 when the run failed or lost QoS 1/2 messages, 2 on bad options.

use std::process::ExitCode;

use clap::Parser;
use shardmq_bench::cli::Opts;
use shardmq_bench::plan::Scenario;
use shardmq_bench::{hgrm, probe, rtt, run};

/// A probe's end: its summary on stdout, its report in `--json`, or its error.
fn probe_done<R: serde::Serialize>(
    opts: &Opts,
    result: Result<R, String>,
    summary: impl Fn(&R) -> String,
) -> ExitCode {
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shardmq-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", summary(&report));
    if let Some(path) = &opts.json {
        let text = serde_json::to_string_pretty(&report).expect("report serialises");
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("shardmq-bench: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    if let Err(e) = opts.validate() {
        eprintln!("shardmq-bench: {e}");
        return ExitCode::from(2);
    }
    shardmq_bench::wire::PERSISTENT.store(opts.persistent, std::sync::atomic::Ordering::Relaxed);
    match opts.scenario {
        Scenario::Rtt => return probe_done(&opts, rtt::rtt(&opts), |r| r.summary()),
        Scenario::Window => return probe_done(&opts, probe::window(&opts), |r| r.summary()),
        _ => {}
    }
    let (report, hist) = match run::run(&opts, &mut std::io::stderr()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shardmq-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", report.summary());
    if let Some(path) = &opts.json {
        let text = serde_json::to_string_pretty(&report).expect("report serialises");
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("shardmq-bench: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if let Some(path) = &opts.hdr {
        if let Err(e) = std::fs::write(path, hgrm::render(&hist)) {
            eprintln!("shardmq-bench: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if let Some(path) = &opts.plot {
        if let Err(e) = shardmq_bench::plot::draw(path, &report, &hist) {
            eprintln!("shardmq-bench: {e}");
            return ExitCode::FAILURE;
        }
    }
    if report.failed_connections > 0 {
        return ExitCode::FAILURE;
    }
    if opts.qos > 0 && report.lost > 0 {
        eprintln!(
            "shardmq-bench: {} QoS {} messages lost",
            report.lost, opts.qos
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
