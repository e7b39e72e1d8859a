//! Bearer tokens, rate limits and CORS at the edge.

use std::num::NonZeroU32;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use meshwork_gateway::auth::{AuthConfig, VerifyKey};
use meshwork_gateway::edge::GatewayConfig;
use meshwork_gateway::limit::RateLimitConfig;
use serde_json::json;

use crate::echo;

const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(
    algorithm: Algorithm,
    key: &EncodingKey,
    kid: Option<&str>,
    sub: &str,
    exp: u64,
) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    encode(
        &header,
        &json!({"sub": sub, "exp": exp, "iss": "meshwork-tests"}),
        key,
    )
    .unwrap()
}

fn hs256(sub: &str) -> String {
    token(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET),
        None,
        sub,
        now() + 600,
    )
}

fn auth_config() -> GatewayConfig {
    let mut keys = vec![
        VerifyKey::hs256(SECRET),
        VerifyKey::rs256_pem(&key_file("rs256-test-public.pem")).unwrap(),
        VerifyKey::es256_pem(&key_file("es256-test-public.pem")).unwrap(),
    ];
    keys.extend(
        VerifyKey::from_jwks(&String::from_utf8(key_file("jwks-test.json")).unwrap()).unwrap(),
    );
    GatewayConfig {
        auth: AuthConfig {
            keys,
            issuer: Some("meshwork-tests".into()),
            audience: None,
            public: vec!["meshwork.testing.v1.EchoService/EchoName".into()],
        },
        ..GatewayConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_verified_and_become_the_subject() {
    let edge = echo::start_with(auth_config()).await;

    let missing = edge.call(Method::GET, "/v1/echo/a", None).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.json["code"], 16);
    assert!(
        missing.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );

    let public = edge.call(Method::GET, "/v1/shelves/s/books/b", None).await;
    assert_eq!(
        public.status,
        StatusCode::OK,
        "a public route needs no token"
    );

    let rsa = EncodingKey::from_rsa_pem(&key_file("rs256-test-private.pem")).unwrap();
    let ec = EncodingKey::from_ec_pem(&key_file("es256-test-private-pk8.pem")).unwrap();
    let tokens = [
        ("hs256", hs256("alice")),
        (
            "rs256",
            token(Algorithm::RS256, &rsa, None, "alice", now() + 600),
        ),
        (
            "es256",
            token(Algorithm::ES256, &ec, None, "alice", now() + 600),
        ),
        (
            "jwks",
            token(
                Algorithm::RS256,
                &rsa,
                Some("test-rsa-1"),
                "alice",
                now() + 600,
            ),
        ),
    ];
    for (name, token) in tokens {
        let bearer = format!("Bearer {token}");
        let answer = edge
            .call_with(
                Method::GET,
                "/v1/echo/a",
                None,
                &[
                    ("authorization", &bearer),
                    ("x-meshwork-subject", "mallory"),
                    ("grpc-metadata-x-meshwork-subject", "mallory"),
                ],
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{name}: {}", answer.json);
        assert_eq!(
            answer.headers["grpc-metadata-x-meshwork-subject"], "alice",
            "{name}: the subject is the token's"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_forged_and_malformed_tokens_are_refused() {
    let edge = echo::start_with(auth_config()).await;
    let expired = token(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET),
        None,
        "alice",
        now() - 3600,
    );
    let forged = token(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another-secret-another-secret-!!"),
        None,
        "alice",
        now() + 600,
    );
    let cases = [
        (format!("Bearer {expired}"), "expired"),
        (format!("Bearer {forged}"), "signature"),
        ("Bearer not.a.jwt".to_owned(), "malformed"),
        (format!("Basic {}", hs256("alice")), "Bearer"),
    ];
    for (header, needle) in cases {
        let answer = edge
            .call_with(
                Method::GET,
                "/v1/echo/a",
                None,
                &[("authorization", &header)],
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{header}");
        let message = answer.json["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        assert!(
            answer.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("error=")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_rate_limit_gets_429_with_retry_after() {
    let config = GatewayConfig {
        rate_limit: Some(RateLimitConfig {
            per_second: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(3).unwrap(),
        }),
        ..auth_config()
    };
    let edge = echo::start_with(config).await;
    let alice = format!("Bearer {}", hs256("alice"));
    let bob = format!("Bearer {}", hs256("bob"));
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            edge.call_with(
                Method::GET,
                "/v1/echo/a",
                None,
                &[("authorization", &alice)],
            )
            .await,
        );
    }
    let codes: Vec<u16> = statuses.iter().map(|a| a.status.as_u16()).collect();
    assert_eq!(codes, [200, 200, 200, 429, 429]);
    assert!(
        statuses[3].headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(statuses[3].json["code"], 8, "RESOURCE_EXHAUSTED");
    let other = edge
        .call_with(Method::GET, "/v1/echo/a", None, &[("authorization", &bob)])
        .await;
    assert_eq!(
        other.status,
        StatusCode::OK,
        "each subject has its own bucket"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_is_answered_before_routing() {
    let config = GatewayConfig {
        cors_origins: vec!["https://app.example".into()],
        ..auth_config()
    };
    let edge = echo::start_with(config).await;
    let preflight = edge
        .call_with(
            Method::OPTIONS,
            "/v1/echo/a",
            None,
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "GET"),
            ],
        )
        .await;
    assert_eq!(preflight.status, StatusCode::OK);
    assert_eq!(
        preflight.headers["access-control-allow-origin"],
        "https://app.example"
    );
    let stranger = edge
        .call_with(
            Method::OPTIONS,
            "/v1/echo/a",
            None,
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "GET"),
            ],
        )
        .await;
    assert!(
        stranger
            .headers
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_makes_a_route_public_and_passes_its_headers() {
    let edge = echo::start_with(auth_config()).await;
    let headers = [
        ("x-provider-signature", "sig-1"),
        ("x-other", "not passed"),
        // Ignored on a public route, not refused.
        ("authorization", "Bearer not-a-token"),
        // No verified subject on a public route, and no spoofed one either.
        ("grpc-metadata-x-meshwork-subject", "mallory"),
    ];
    let answer = edge
        .call_with(Method::POST, "/v1/callbacks/c1", Some("{}"), &headers)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json);
    assert_eq!(
        answer.headers["grpc-metadata-x-provider-signature"],
        "sig-1"
    );
    assert!(!answer.headers.contains_key("grpc-metadata-x-other"));
    assert!(
        !answer
            .headers
            .contains_key("grpc-metadata-x-meshwork-subject")
    );
    // Other routes still need a token.
    let private = edge.call(Method::PUT, "/v1/echo/a:all", Some("{}")).await;
    assert_eq!(private.status, StatusCode::UNAUTHORIZED);
}
