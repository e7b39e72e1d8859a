//! Bearer-token authentication at the edge.
//!
//! Tokens are JWTs signed with HS256 (a shared secret), RS256 or ES256 (a
//! public key in PEM, or a JWKS file, picked by `kid`). A verified token's
//! `sub` is passed to the services as `x-meshwork-subject`; that metadata is
//! never taken from outside. Which routes need a token is configuration: every
//! route is private unless a pattern in `public` names its gRPC method
//! (`meshwork.finance.account.v1.AccountService/GetAccount`, or a prefix
//! ending in `*`). With no key configured, authentication is off (the
//! embedded `meshwork up` demo), and the process says so at start.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, jwk::JwkSet};
use serde::Deserialize;

use crate::problem::Problem;

/// A key that verifies tokens.
#[derive(Clone)]
pub struct VerifyKey {
    /// `kid` it answers to (from a JWKS), if any.
    pub kid: Option<String>,
    /// The algorithm it verifies.
    pub algorithm: Algorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A key that cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[error("auth key: {0}")]
pub struct KeyError(String);

impl KeyError {
    /// An error saying `what`.
    pub fn new(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

impl VerifyKey {
    /// An HS256 shared secret.
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            kid: None,
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(secret),
        }
    }

    /// An RS256 public key in PEM.
    pub fn rs256_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let key = DecodingKey::from_rsa_pem(pem).map_err(|e| KeyError(e.to_string()))?;
        Ok(Self {
            kid: None,
            algorithm: Algorithm::RS256,
            key,
        })
    }

    /// An ES256 public key in PEM.
    pub fn es256_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let key = DecodingKey::from_ec_pem(pem).map_err(|e| KeyError(e.to_string()))?;
        Ok(Self {
            kid: None,
            algorithm: Algorithm::ES256,
            key,
        })
    }

    /// Every RS256/ES256 key of a JWKS document.
    pub fn from_jwks(json: &str) -> Result<Vec<Self>, KeyError> {
        let set: JwkSet = serde_json::from_str(json).map_err(|e| KeyError(format!("JWKS: {e}")))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let algorithm = match jwk.common.key_algorithm.map(|a| a.to_string()).as_deref() {
                Some("RS256") => Algorithm::RS256,
                Some("ES256") => Algorithm::ES256,
                Some(other) => {
                    return Err(KeyError(format!("JWKS key with unsupported alg {other}")));
                }
                None => match &jwk.algorithm {
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    _ => return Err(KeyError("JWKS key of an unsupported type".into())),
                },
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| KeyError(e.to_string()))?;
            keys.push(Self {
                kid: jwk.common.key_id.clone(),
                algorithm,
                key,
            });
        }
        Ok(keys)
    }
}

/// Who may call what.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Verifying keys; empty turns authentication off.
    pub keys: Vec<VerifyKey>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// gRPC methods (`pkg.Service/Method`, or a prefix ending in `*`) that
    /// need no token.
    pub public: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
}

impl AuthConfig {
    /// Whether tokens are checked at all.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether `method` (`pkg.Service/Method`) needs no token.
    pub fn is_public(&self, method: &str) -> bool {
        self.public
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => method.starts_with(prefix),
                None => method == pattern,
            })
    }

    /// The verified subject of the request, `None` for a public route
    /// without a token, or a 401.
    pub fn authenticate(
        &self,
        method: &str,
        headers: &HeaderMap,
    ) -> Result<Option<String>, Problem> {
        if !self.enabled() {
            return Ok(None);
        }
        let token = match headers.get(http::header::AUTHORIZATION) {
            None if self.is_public(method) => return Ok(None),
            None => return Err(unauthenticated("a bearer token is required", None)),
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .ok_or_else(|| {
                    unauthenticated(
                        "the Authorization header must be `Bearer <token>`",
                        Some("invalid_request"),
                    )
                })?,
        };
        self.verify(token).map(Some)
    }

    fn verify(&self, token: &str) -> Result<String, Problem> {
        let invalid = |why: &str| unauthenticated(why, Some("invalid_token"));
        let header = decode_header(token).map_err(|_| invalid("the token is malformed"))?;
        let candidates = self
            .keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| header.kid.is_none() || k.kid.is_none() || k.kid == header.kid);
        let mut last = invalid("no key verifies tokens of this algorithm");
        for key in candidates {
            let mut validation = Validation::new(key.algorithm);
            validation.leeway = Duration::from_secs(30).as_secs();
            validation.validate_nbf = true;
            validation.set_required_spec_claims(&["exp", "sub"]);
            match &self.issuer {
                Some(issuer) => validation.set_issuer(&[issuer]),
                None => validation.iss = None,
            }
            match &self.audience {
                Some(audience) => validation.set_audience(&[audience]),
                None => validation.validate_aud = false,
            }
            match decode::<Claims>(token, &key.key, &validation) {
                Ok(data) if !data.claims.sub.is_empty() => return Ok(data.claims.sub),
                Ok(_) => last = invalid("the token has no subject"),
                Err(error) => {
                    use jsonwebtoken::errors::ErrorKind;
                    last = invalid(match error.kind() {
                        ErrorKind::ExpiredSignature => "the token has expired",
                        ErrorKind::ImmatureSignature => "the token is not valid yet",
                        ErrorKind::InvalidSignature => "the token's signature does not verify",
                        ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
                        ErrorKind::InvalidAudience => "the token's audience is not accepted",
                        _ => "the token is not valid",
                    });
                }
            }
        }
        Err(last)
    }
}

/// 401 with `WWW-Authenticate` (RFC 6750).
fn unauthenticated(description: &str, error: Option<&str>) -> Problem {
    let mut problem = Problem::new(
        StatusCode::UNAUTHORIZED,
        tonic::Code::Unauthenticated,
        description,
    );
    let challenge = match error {
        Some(error) => format!(
            r#"Bearer realm="meshwork", error="{error}", error_description="{description}""#
        ),
        None => r#"Bearer realm="meshwork""#.to_owned(),
    };
    problem
        .headers
        .push((http::header::WWW_AUTHENTICATE, challenge));
    problem
}
