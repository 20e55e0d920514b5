//! The command line: `shardmq [--config PATH] [--mqtt ADDR] [--http ADDR] [--shards N]
//! [--set KEY=VALUE]... [--check]`, and how it turns into a validated [`Config`].
//!
//! Owns: [`Cli`] (clap derive) and the precedence defaults ← file ← `--set`s ← flags.
//! Runs on the main thread at start-up only. It reads the `--config` file and nothing else;
//! it never prints, exits, starts executors or touches the OS limits itself (`--check` is
//! acted on by `main`, with [`check_report`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::config::{Config, ConfigError, DEFAULT_TOML};

/// ShardMQ: a thread-per-core, shared-nothing MQTT broker.
///
/// Configuration is read in this order, each step overriding the one before: the built-in
/// defaults (tuning/shardmq.toml), the --config file, every --set in order, then --mqtt,
/// --http and --shards.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "shardmq", version, about, long_about)]
pub struct Cli {
    /// TOML configuration file to read instead of the built-in defaults (keys it leaves out
    /// keep their defaults; unknown keys are errors).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Address of the MQTT TCP listener, e.g. 0.0.0.0:1883 (sets listeners.tcp.bind).
    #[arg(long, value_name = "ADDR")]
    pub mqtt: Option<SocketAddr>,

    /// Address of the HTTP management API, e.g. 127.0.0.1:8080 (sets management.bind).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,

    /// Number of shards: runs on the first N cores of shards.cores (or of the cores this
    /// process may use), sharing cores if N is larger (sets shards.count).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub shards: Option<u16>,

    /// Override one configuration key, e.g. --set mqtt.max_inflight=64,
    /// --set 'shards.cores=[0, 1]', --set node.name=shardmq@10.0.0.1. VALUE is TOML, or a plain
    /// string. May be repeated.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    /// Check the configuration and the OS (io_uring, locked memory, open files, cores), print
    /// what is wrong and how to fix it, and exit (status 0 if the broker could start).
    #[arg(long)]
    pub check: bool,
}

impl Cli {
    /// Builds the configuration: defaults, then the `--config` file, then each `--set`, then
    /// the explicit flags; then validates it. Errors name the file or flag, the line and key.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => {
                let origin = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(None, format!("cannot read the file: {e}"))
                        .with_origin(&origin)
                })?;
                Config::from_toml_str(&text).map_err(|e| e.with_origin(&origin))?
            }
            None => Config::from_toml_str(DEFAULT_TOML)
                .map_err(|e| e.with_origin("built-in tuning/shardmq.toml"))?,
        };
        for assignment in &self.set {
            config.apply_set(assignment)?;
        }
        if let Some(addr) = self.mqtt {
            config.listeners.tcp.bind = addr;
        }
        if let Some(addr) = self.http {
            config.management.bind = addr;
        }
        if let Some(n) = self.shards {
            config.shards.count = usize::from(n);
        }
        config.validate()?;
        Ok(config)
    }
}

/// What `--check` found: one line per finding, and whether the broker could start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Human-readable findings (placement, pre-flight issues with fixes), or "all checks passed".
    pub lines: Vec<String>,
    /// False if any finding is fatal.
    pub ok: bool,
}

/// Runs the pre-flight checks for `config` on this machine (this may raise the process's soft
/// MEMLOCK/NOFILE limits) and collects every finding, for `--check` and for start-up logs.
pub fn check_report(config: &Config) -> CheckReport {
    use shardmq_shards::preflight::{available_cores, preflight, Severity};

    let available = available_cores();
    let shard_cores = config.shard_cores(&available);
    let mut lines = vec![format!(
        "{} shards on cores {shard_cores:?}, management on core {} (this process may use {available:?})",
        shard_cores.len(),
        config.management_core(&available),
    )];
    lines.extend(
        config
            .placement_warnings(&available)
            .into_iter()
            .map(|w| format!("warning: {w}")),
    );
    let issues = preflight(shard_cores.len(), config.listeners.tcp.max_connections);
    let ok = !issues.iter().any(|i| i.severity == Severity::Fatal);
    lines.extend(issues.iter().map(ToString::to_string));
    if issues.is_empty() {
        lines.push("all checks passed".to_owned());
    }
    CheckReport { lines, ok }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("shardmq").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_arguments_give_the_defaults() {
        let cli = parse(&[]).unwrap();
        assert!(!cli.check);
        assert_eq!(cli.into_config().unwrap(), Config::default());
    }

    #[test]
    fn flags_parse() {
        let cli = parse(&[
            "--mqtt",
            "127.0.0.1:1884",
            "--http=127.0.0.1:8081",
            "--shards",
            "3",
            "--set",
            "mqtt.max_inflight=64",
            "--set",
            "shards.cores=[0,1]",
            "--check",
        ])
        .unwrap();
        assert_eq!(cli.shards, Some(3));
        assert_eq!(cli.set.len(), 2);
        assert!(cli.check);
        let c = cli.into_config().unwrap();
        assert_eq!(c.listeners.tcp.bind, "127.0.0.1:1884".parse().unwrap());
        assert_eq!(c.management.bind, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(c.shards.count, 3);
        assert_eq!(c.shards.cores, vec![0, 1]);
        assert_eq!(c.mqtt.max_inflight, 64);
        assert_eq!(c.shard_cores(&[0, 1, 2, 3]), vec![0, 1, 0]);
    }

    #[test]
    fn bad_flags_are_rejected_by_clap() {
        assert!(parse(&["--mqtt", "localhost"]).is_err());
        assert!(parse(&["--shards", "0"]).is_err());
        assert!(parse(&["--shards", "x"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }

    #[test]
    fn flags_override_set_which_overrides_the_file() {
        let dir = std::env::temp_dir().join(format!("shardmq-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("override.toml");
        std::fs::write(
            &path,
            "[mqtt]\nmax_inflight = 10\nmax_mqueue = 20\n[listeners.tcp]\nbind = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let path_str = path.to_str().unwrap();
        let c = parse(&[
            "--config",
            path_str,
            "--set",
            "mqtt.max_mqueue=30",
            "--set",
            "listeners.tcp.bind=127.0.0.1:2",
            "--mqtt",
            "127.0.0.1:3",
        ])
        .unwrap()
        .into_config()
        .unwrap();
        assert_eq!(c.mqtt.max_inflight, 10, "from the file");
        assert_eq!(c.mqtt.max_mqueue, 30, "--set beats the file");
        assert_eq!(
            c.listeners.tcp.bind,
            "127.0.0.1:3".parse().unwrap(),
            "flag beats --set"
        );
        assert_eq!(
            c.retainer,
            Config::default().retainer,
            "untouched keys keep defaults"
        );

        std::fs::write(&path, "[mqtt]\nmax_inflight = 1\nmax_inflight_x = 2\n").unwrap();
        let e = parse(&["--config", path_str])
            .unwrap()
            .into_config()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{path_str} line 3: mqtt.max_inflight_x: {}", e.message())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_file_and_bad_set_and_invalid_values_are_errors() {
        let e = parse(&["--config", "/nonexistent/shardmq.toml"])
            .unwrap()
            .into_config()
            .unwrap_err();
        assert_eq!(e.origin(), Some("/nonexistent/shardmq.toml"));

        let e = parse(&["--set", "mqtt.max_inflight=x"])
            .unwrap()
            .into_config()
            .unwrap_err();
        assert_eq!(e.origin(), Some("--set"));
        assert_eq!(e.key(), Some("mqtt.max_inflight"));

        let e = parse(&["--set", "mqtt.max_inflight=0"])
            .unwrap()
            .into_config()
            .unwrap_err();
        assert_eq!(e.key(), Some("mqtt.max_inflight"), "validated");
    }

    #[test]
    fn help_mentions_every_option() {
        let help = Cli::command().render_long_help().to_string();
        for option in [
            "--config", "--mqtt", "--http", "--shards", "--set", "--check",
        ] {
            assert!(help.contains(option), "{option} missing from --help");
        }
    }

    #[test]
    fn check_report_lists_placement() {
        let report = check_report(&Config::default());
        assert!(report.lines[0].contains("shards on cores"), "{report:?}");
    }
}
