//! The edge's flags (with `MESHWORK_*` environment fallbacks), turned into a
//! [`GatewayConfig`].

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::{AuthConfig, KeyError, VerifyKey};
use crate::edge::GatewayConfig;
use crate::limit::RateLimitConfig;

/// Flags of the REST edge.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GatewayArgs {
    /// File holding the HS256 secret that signs bearer tokens.
    #[arg(long, env = "MESHWORK_JWT_HS256_SECRET_FILE")]
    pub jwt_hs256_secret_file: Option<PathBuf>,
    /// PEM file of the RS256 or ES256 public key that verifies bearer tokens.
    #[arg(long, env = "MESHWORK_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// JWKS file of RS256/ES256 keys, chosen by the token's `kid`.
    #[arg(long, env = "MESHWORK_JWKS_FILE")]
    pub jwks_file: Option<PathBuf>,
    /// Required token issuer (`iss`).
    #[arg(long, env = "MESHWORK_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required token audience (`aud`).
    #[arg(long, env = "MESHWORK_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// gRPC methods reachable without a token (`pkg.Service/Method` or a prefix ending in `*`).
    #[arg(
        long = "public-route",
        env = "MESHWORK_PUBLIC_ROUTES",
        value_delimiter = ','
    )]
    pub public_routes: Vec<String>,
    /// Per-client rate limit as `<per second>/s` or `<per second>/s:<burst>`, e.g. `50/s:100`.
    #[arg(long, env = "MESHWORK_RATE_LIMIT", value_parser = parse_rate_limit)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Origins allowed by CORS (`*` for any); none disables CORS.
    #[arg(
        long = "cors-origin",
        env = "MESHWORK_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Largest REST request body in bytes (413 above).
    #[arg(long, env = "MESHWORK_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
}

impl GatewayArgs {
    /// The edge's configuration; reads the key files.
    pub fn config(&self, default_timeout: Duration) -> Result<GatewayConfig, KeyError> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| KeyError::new(format!("{}: {e}", path.display())))
        };
        let mut keys = Vec::new();
        if let Some(path) = &self.jwt_hs256_secret_file {
            let secret = read(path)?;
            let secret = secret.trim_ascii();
            if secret.len() < 32 {
                return Err(KeyError::new(format!(
                    "{}: an HS256 secret needs at least 32 bytes",
                    path.display()
                )));
            }
            keys.push(VerifyKey::hs256(secret));
        }
        if let Some(path) = &self.jwt_public_key_file {
            let pem = read(path)?;
            keys.push(VerifyKey::rs256_pem(&pem).or_else(|_| VerifyKey::es256_pem(&pem))?);
        }
        if let Some(path) = &self.jwks_file {
            let json = String::from_utf8(read(path)?)
                .map_err(|_| KeyError::new("the JWKS file is not UTF-8"))?;
            keys.extend(VerifyKey::from_jwks(&json)?);
        }
        Ok(GatewayConfig {
            default_timeout,
            max_body_bytes: self.max_body_bytes,
            auth: AuthConfig {
                keys,
                issuer: self.jwt_issuer.clone(),
                audience: self.jwt_audience.clone(),
                public: self.public_routes.clone(),
            },
            rate_limit: self.rate_limit,
            cors_origins: self.cors_origins.clone(),
            ..GatewayConfig::default()
        })
    }
}

/// `50/s` or `50/s:100`.
pub fn parse_rate_limit(text: &str) -> Result<RateLimitConfig, String> {
    let (rate, burst) = text
        .split_once(':')
        .map_or((text, None), |(r, b)| (r, Some(b)));
    let per_second = rate
        .strip_suffix("/s")
        .and_then(|n| n.parse::<u32>().ok())
        .and_then(NonZeroU32::new)
        .ok_or_else(|| format!("{text:?}: expected <n>/s or <n>/s:<burst>"))?;
    let burst = match burst {
        None => per_second,
        Some(b) => b
            .parse::<u32>()
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or_else(|| format!("{text:?}: bad burst"))?,
    };
    Ok(RateLimitConfig { per_second, burst })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rate_limits() {
        let limit = parse_rate_limit("50/s:100").unwrap();
        assert_eq!((limit.per_second.get(), limit.burst.get()), (50, 100));
        assert_eq!(parse_rate_limit("7/s").unwrap().burst.get(), 7);
        for bad in ["50", "0/s", "x/s", "5/s:0", "5/m"] {
            assert!(parse_rate_limit(bad).is_err(), "{bad}");
        }
    }
}
