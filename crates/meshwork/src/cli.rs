//! The command line. Each service's own flags (its descriptor's `flags`)
//! are added to `up` and `serve` under a heading of their own.

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use meshwork_gateway::config::GatewayArgs;
use meshwork_runtime::config::RuntimeArgs;
use meshwork_runtime::service;

use crate::targets;

/// Meshwork: finance, commerce and manufacturing services on one traced gRPC mesh.
#[derive(Debug, Parser)]
#[command(name = "meshwork", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole mesh in one process (all services, the gateway), with demo data.
    Up {
        #[command(flatten)]
        runtime: RuntimeArgs,
        #[command(flatten)]
        gateway: GatewayArgs,
        /// Skip loading the demo data.
        #[arg(long, env = "MESHWORK_NO_SEED")]
        no_seed: bool,
    },
    /// Run the named targets: services (finance.account), groups (finance, all) or gateway.
    Serve {
        /// Comma-separated targets; see `meshwork targets`.
        #[arg(
            long,
            short,
            env = "MESHWORK_TARGET",
            value_delimiter = ',',
            default_value = "all"
        )]
        target: Vec<String>,
        #[command(flatten)]
        runtime: RuntimeArgs,
        #[command(flatten)]
        gateway: GatewayArgs,
    },
    /// Apply the database migrations of the named targets, then exit.
    Migrate {
        /// Comma-separated targets.
        #[arg(
            long,
            short,
            env = "MESHWORK_TARGET",
            value_delimiter = ',',
            default_value = "all"
        )]
        target: Vec<String>,
        #[command(flatten)]
        runtime: RuntimeArgs,
    },
    /// List the targets and groups.
    Targets,
    /// Print the version.
    Version,
}

/// The full command: the derived one plus every service's flags on the
/// commands that start services.
pub fn command() -> clap::Command {
    let mut command = Cli::command();
    for name in ["up", "serve"] {
        command = command.mut_subcommand(name, |sub| service::with_flags(sub, targets::SERVICES));
    }
    command
}

/// Parses the process's arguments: the command, and the matches the
/// services read their own flags from.
pub fn parse() -> (Cli, ArgMatches) {
    let matches = command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let flags = matches
        .subcommand()
        .map(|(_, sub)| sub.clone())
        .unwrap_or_default();
    (cli, flags)
}

impl Cli {
    /// Runs the chosen command; `flags` holds the services' own flags.
    pub async fn run(self, flags: ArgMatches) -> anyhow::Result<()> {
        match self.command {
            Command::Up {
                runtime,
                gateway,
                no_seed,
            } => {
                crate::run::run(
                    targets::expand(&["all".to_owned()])?,
                    runtime,
                    gateway,
                    flags,
                    !no_seed,
                )
                .await
            }
            Command::Serve {
                target,
                runtime,
                gateway,
            } => crate::run::run(targets::expand(&target)?, runtime, gateway, flags, false).await,
            Command::Migrate { target, runtime } => {
                crate::run::migrate(targets::expand(&target)?, runtime).await
            }
            Command::Targets => {
                let names: Vec<&str> = targets::SERVICES.iter().map(|s| s.target).collect();
                println!(
                    "services: {}, plus the {} (HTTP edge)",
                    names.join(", "),
                    targets::GATEWAY
                );
                for (group, members) in targets::groups() {
                    println!("{group:<20} {}", members.join(", "));
                }
                Ok(())
            }
            Command::Version => {
                println!("meshwork {}", env!("CARGO_PKG_VERSION"));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_consistent_and_carries_every_service_flag() {
        let command = command();
        command.clone().debug_assert();
        let serve = command.find_subcommand("serve").unwrap();
        for flag in [
            "payment-sandbox-addr",
            "audit-masking-file",
            "transaction-settle-interval",
        ] {
            assert!(
                serve.get_arguments().any(|a| a.get_long() == Some(flag)),
                "serve has no --{flag}"
            );
        }
    }

    #[test]
    fn service_flags_reach_the_services() {
        let matches = command()
            .try_get_matches_from([
                "meshwork",
                "serve",
                "--target",
                "finance.transaction",
                "--transaction-settle-after",
                "3s",
            ])
            .unwrap();
        let (_, sub) = matches.subcommand().unwrap();
        let flags = finance_transaction::TransactionArgs::from_arg_matches(sub).unwrap();
        assert_eq!(
            flags.transaction_settle_after,
            std::time::Duration::from_secs(3)
        );
        assert!(Cli::from_arg_matches(&matches).is_ok());
    }
}
