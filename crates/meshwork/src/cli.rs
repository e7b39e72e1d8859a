//! The command line.

use clap::{Parser, Subcommand};
use meshwork_gateway::config::GatewayArgs;
use meshwork_runtime::config::RuntimeArgs;

use crate::payment::PaymentArgs;

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
        #[command(flatten)]
        payment: PaymentArgs,
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
        #[command(flatten)]
        payment: PaymentArgs,
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

impl Cli {
    /// Runs the chosen command.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Up {
                runtime,
                gateway,
                payment,
                no_seed,
            } => {
                crate::run::run(
                    targets::expand(&["all".to_owned()])?,
                    runtime,
                    gateway,
                    payment,
                    !no_seed,
                )
                .await
            }
            Command::Serve {
                target,
                runtime,
                gateway,
                payment,
            } => crate::run::run(targets::expand(&target)?, runtime, gateway, payment, false).await,
            Command::Migrate { target, runtime } => {
                crate::run::migrate(targets::expand(&target)?, runtime).await
            }
            Command::Targets => {
                println!(
                    "services: {}, plus the {} (HTTP edge)",
                    targets::SERVICES.join(", "),
                    targets::GATEWAY
                );
                for (group, members) in targets::GROUPS {
                    println!("{group:<16} {}", members.join(", "));
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
