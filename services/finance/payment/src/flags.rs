//! finance.payment's flags, those of the sandbox provider that `meshwork
//! up` runs for it, and the channels' keys they lead to.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use meshwork_runtime::config::parse_duration;

use crate::credentials::{self, ChannelsFile, Credentials, SandboxKeys};
use crate::sandbox::{Behaviour, Sandbox};

/// Flags of the payment service and the sandbox provider.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "finance.payment and payment-sandbox")]
pub struct PaymentArgs {
    /// JSON file of the channels' endpoints, merchant ids and keys. Without
    /// it the payment service uses the sandbox provider run in this process.
    #[arg(long, env = "MESHWORK_PAYMENT_CHANNELS_FILE")]
    pub payment_channels_file: Option<PathBuf>,
    /// The same JSON given in the environment (e.g. from a Kubernetes
    /// Secret); never echoed in help or logs.
    #[arg(
        long,
        env = "MESHWORK_PAYMENT_CHANNELS_JSON",
        hide_env_values = true,
        conflicts_with = "payment_channels_file"
    )]
    pub payment_channels_json: Option<String>,
    /// Base URL of the REST edge the channels send notifications to
    /// (default: this process's HTTP address).
    #[arg(long, env = "MESHWORK_PAYMENT_NOTIFY_URL")]
    pub payment_notify_url: Option<String>,
    /// How often the payment sync job runs.
    #[arg(long, env = "MESHWORK_PAYMENT_SYNC_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub payment_sync_interval: Duration,
    /// How long a payment waits for its notification before the sync job asks the channel.
    #[arg(long, env = "MESHWORK_PAYMENT_SYNC_AFTER", default_value = "10s", value_parser = parse_duration)]
    pub payment_sync_after: Duration,
    /// How far a notification's signed time may be from ours.
    #[arg(long, env = "MESHWORK_PAYMENT_NOTIFY_WINDOW", default_value = "5m", value_parser = parse_duration)]
    pub payment_notify_window: Duration,
    /// Where the SANDBOX payment provider listens.
    #[arg(
        long,
        env = "MESHWORK_PAYMENT_SANDBOX_ADDR",
        default_value = "127.0.0.1:8091"
    )]
    pub payment_sandbox_addr: SocketAddr,
    /// Sandbox: time from opening a payment to its outcome.
    #[arg(long, env = "MESHWORK_PAYMENT_SANDBOX_DELAY", default_value = "2s", value_parser = parse_duration)]
    pub payment_sandbox_delay: Duration,
    /// Sandbox: share of payments declined (0.0-1.0).
    #[arg(
        long,
        env = "MESHWORK_PAYMENT_SANDBOX_DECLINE_RATE",
        default_value_t = 0.0
    )]
    pub payment_sandbox_decline_rate: f64,
    /// Sandbox: share of notifications lost (0.0-1.0).
    #[arg(
        long,
        env = "MESHWORK_PAYMENT_SANDBOX_LOST_RATE",
        default_value_t = 0.0
    )]
    pub payment_sandbox_lost_rate: f64,
    /// Sandbox: how many times each notification is sent (providers resend
    /// when unsure; more than 1 tests that duplicates change nothing).
    #[arg(
        long,
        env = "MESHWORK_PAYMENT_SANDBOX_COPIES",
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(1..=10)
    )]
    pub payment_sandbox_copies: u32,
}

/// The two sides of the channels' keys in this process.
pub struct Keys {
    /// The payment service's (taken when it starts).
    pub channels: Option<Credentials>,
    /// The sandbox's, when it runs here with generated keys.
    pub sandbox: Option<SandboxKeys>,
    /// The sandbox's listener, bound before the keys were made so that
    /// they name its real address (port 0 picks a free one).
    pub sandbox_listener: Option<std::net::TcpListener>,
}

impl PaymentArgs {
    /// The keys: from the channels file, or a fresh pair shared with the
    /// sandbox running here.
    pub fn keys(&self, sandbox_here: bool) -> anyhow::Result<Keys> {
        let configured = match (&self.payment_channels_file, &self.payment_channels_json) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("read {}", path.display()))?;
                Some((text, path.display().to_string()))
            }
            (None, Some(json)) => Some((json.clone(), "MESHWORK_PAYMENT_CHANNELS_JSON".to_owned())),
            (None, None) => None,
        };
        match (configured, sandbox_here) {
            (Some((text, origin)), false) => {
                // The error names where the JSON came from, never its content.
                let channels = Credentials::from_json(&text).with_context(|| origin)?;
                Ok(Keys {
                    channels: Some(channels),
                    sandbox: None,
                    sandbox_listener: None,
                })
            }
            (Some(_), true) => anyhow::bail!(
                "the payment sandbox makes its own keys: run it without --payment-channels-file \
                 (or do not run the payment-sandbox target)"
            ),
            (None, true) => {
                let addr = self.payment_sandbox_addr;
                let listener = std::net::TcpListener::bind(addr).with_context(|| {
                    format!(
                        "cannot listen for the payment sandbox on {addr} (already in use? \
                         choose another with --payment-sandbox-addr)"
                    )
                })?;
                listener.set_nonblocking(true)?;
                let base = format!("http://{}", listener.local_addr()?);
                let (file, sandbox): (ChannelsFile, SandboxKeys) =
                    credentials::pair_with_sandbox(&base);
                Ok(Keys {
                    channels: Some(Credentials::from_file(&file)?),
                    sandbox: Some(sandbox),
                    sandbox_listener: Some(listener),
                })
            }
            (None, false) => anyhow::bail!(
                "finance.payment needs --payment-channels-file (or the payment-sandbox target in the same process)"
            ),
        }
    }

    /// The sandbox provider with `keys`.
    pub fn sandbox(&self, keys: SandboxKeys) -> Sandbox {
        Sandbox::new(
            keys,
            Behaviour {
                delay: self.payment_sandbox_delay,
                decline_rate: self.payment_sandbox_decline_rate.clamp(0.0, 1.0),
                lost_rate: self.payment_sandbox_lost_rate.clamp(0.0, 1.0),
                copies: self.payment_sandbox_copies,
            },
        )
    }
}
