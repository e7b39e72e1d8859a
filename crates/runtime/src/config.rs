//! Process configuration: flags with `MESHWORK_*` environment fallbacks and
//! defaults that run on a laptop with nothing installed.
//!
//! Storage and cache are per service, derived from one URL each: with no
//! `--database-url` every service gets a SQLite file under `--data-dir`; with
//! a `postgres://` URL every service gets a schema of its own named after it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cache::CacheConfig;
use crate::client::ClientPolicy;
use crate::db::DbConfig;
use crate::server::ServerLimits;
use crate::telemetry::LogFormat;

/// Settings shared by every command that runs services.
#[derive(Debug, Clone, clap::Args)]
pub struct RuntimeArgs {
    /// Address of the gRPC port (all services of the process share it).
    #[arg(long, env = "MESHWORK_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,
    /// Address of the HTTP port (/healthz, /readyz, /metrics).
    #[arg(long, env = "MESHWORK_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Where embedded state lives (SQLite files) when no database URL is given.
    #[arg(long, env = "MESHWORK_DATA_DIR", default_value = ".data")]
    pub data_dir: PathBuf,
    /// `postgres://...`: each service uses a schema named after it. Unset: SQLite files.
    #[arg(long, env = "MESHWORK_DATABASE_URL")]
    pub database_url: Option<String>,
    /// `redis://...`: second cache level and cross-replica invalidation. Unset: in-process only.
    #[arg(long, env = "MESHWORK_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Log format on stderr: auto is human-readable on a terminal, JSON
    /// when the output goes to a pipe or a file.
    #[arg(long, env = "MESHWORK_LOG_FORMAT", value_enum, default_value = "auto")]
    pub log_format: LogFormat,
    /// Longest time a call may take on the server (a shorter grpc-timeout wins).
    #[arg(long, env = "MESHWORK_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Concurrent calls per connection before new ones queue.
    #[arg(long, env = "MESHWORK_MAX_CONCURRENCY", default_value_t = 256)]
    pub max_concurrency: usize,
    /// Largest gRPC message accepted or sent, in bytes.
    #[arg(long, env = "MESHWORK_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// How often dependencies are probed for health.
    #[arg(long, env = "MESHWORK_HEALTH_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub health_interval: Duration,
    /// Time between NOT_SERVING and closing the gRPC listener on shutdown.
    #[arg(long, env = "MESHWORK_SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Default deadline of calls to other services.
    #[arg(long, env = "MESHWORK_CLIENT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub client_timeout: Duration,
    /// How long a service waits for its database at start (health says
    /// NOT_SERVING meanwhile) before it gives up.
    #[arg(long, env = "MESHWORK_STARTUP_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub startup_timeout: Duration,
    /// How long a service keeps the events it published (consumers further
    /// behind lose them).
    #[arg(long, env = "MESHWORK_EVENT_RETENTION", default_value = "168h", value_parser = parse_duration)]
    pub event_retention: Duration,
    /// Where another service runs, as `target=url` (repeatable, or a comma list).
    /// `MESHWORK_UPSTREAM_<TARGET>` works too, e.g. MESHWORK_UPSTREAM_FINANCE_ACCOUNT.
    /// A target served by this process needs none.
    #[arg(long = "upstream", env = "MESHWORK_UPSTREAMS", value_delimiter = ',', value_parser = parse_upstream)]
    pub upstreams: Vec<(String, String)>,
}

impl RuntimeArgs {
    /// The server limits.
    pub fn limits(&self) -> ServerLimits {
        ServerLimits {
            request_timeout: self.request_timeout,
            max_concurrent_per_connection: self.max_concurrency,
            max_message_bytes: self.max_message_bytes,
            shutdown_grace: self.shutdown_grace,
        }
    }

    /// The client policy for calls to other services.
    pub fn client_policy(&self) -> ClientPolicy {
        ClientPolicy {
            timeout: self.client_timeout,
            ..ClientPolicy::default()
        }
    }

    /// Where `target`'s tables live.
    pub fn db_config(&self, target: &str) -> DbConfig {
        let schema = storage_name(target);
        match &self.database_url {
            Some(url) => DbConfig::new(url.clone(), Some(schema)),
            None => DbConfig::sqlite_file(&self.data_dir.join(format!("{schema}.db"))),
        }
    }

    /// `target`'s cache.
    pub fn cache_config(&self, target: &str) -> CacheConfig {
        CacheConfig::new(format!("meshwork:{target}"), self.redis_url.clone())
    }

    /// The URL of `target` when it runs elsewhere: `--upstream`, then
    /// `MESHWORK_UPSTREAM_<TARGET>`; `None` when this process serves it.
    pub fn upstream(&self, target: &str) -> Option<String> {
        self.upstreams
            .iter()
            .find(|(name, _)| name == target)
            .map(|(_, url)| url.clone())
            .or_else(|| {
                let var = format!(
                    "MESHWORK_UPSTREAM_{}",
                    target.to_ascii_uppercase().replace(['.', '-'], "_")
                );
                std::env::var(var).ok().filter(|url| !url.is_empty())
            })
    }

    /// The effective settings, one line each, secrets redacted.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        vec![
            ("grpc_addr", self.grpc_addr.to_string()),
            ("http_addr", self.http_addr.to_string()),
            (
                "database",
                self.database_url
                    .as_deref()
                    .map(redact_url)
                    .unwrap_or_else(|| format!("sqlite files in {}", self.data_dir.display())),
            ),
            (
                "cache",
                self.redis_url
                    .as_deref()
                    .map(redact_url)
                    .unwrap_or_else(|| "in-process".to_owned()),
            ),
            ("request_timeout", format!("{:?}", self.request_timeout)),
            ("max_concurrency", self.max_concurrency.to_string()),
            ("max_message_bytes", self.max_message_bytes.to_string()),
        ]
    }
}

/// `finance.account` → `finance_account`: the schema or file name of a target.
pub fn storage_name(target: &str) -> String {
    target.replace(['.', '-'], "_")
}

/// A URL with its password replaced by `***`, in the user info (up to the
/// last `@`, since a password may hold an unescaped one) and in query
/// parameters that carry secrets (`password`, `sslpassword`, ...).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let mut out = format!("{scheme}://");
    match before_query.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            out.push_str(&format!("{masked}@{host}"));
        }
        None => out.push_str(before_query),
    }
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_secret_key(key) => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "passwd", "secret", "token", "key"]
        .iter()
        .any(|s| key.contains(s))
}

/// "250ms", "30s", "2m", "1h".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let amount: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: expected a number and a unit like 30s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(amount)),
        "s" | "" => Ok(Duration::from_secs(amount)),
        "m" => Ok(Duration::from_secs(amount * 60)),
        "h" => Ok(Duration::from_secs(amount * 3600)),
        _ => Err(format!("{text:?}: unit must be ms, s, m or h")),
    }
}

fn parse_upstream(text: &str) -> Result<(String, String), String> {
    let (target, url) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected target=url"))?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!(
            "{text:?}: the URL must start with http:// or https://"
        ));
    }
    Ok((target.trim().to_owned(), url.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3d").is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }

    #[test]
    fn parses_upstreams() {
        assert_eq!(
            parse_upstream("finance.account=http://account:50051").unwrap(),
            (
                "finance.account".to_owned(),
                "http://account:50051".to_owned()
            )
        );
        assert!(parse_upstream("finance.account").is_err());
        assert!(parse_upstream("x=account:50051").is_err());
    }
}
