//! The three payment channels' wire protocols: how each builds and signs a
//! request and verifies what comes back (synchronous answers and
//! asynchronous notifications), following each provider's documentation.
//!
//! - [`alipay`]: RSA2 — SHA256withRSA over the parameters sorted by name and
//!   joined as `k=v&k=v` (empty values left out; `sign` left out of requests,
//!   `sign` and `sign_type` out of notifications).
//! - [`wechat`]: WeChat Pay API v3 — SHA256withRSA over
//!   `method\nurl\ntimestamp\nnonce\nbody\n` for requests and
//!   `timestamp\nnonce\nbody\n` for answers and notifications (headers
//!   `Wechatpay-Signature`, `-Timestamp`, `-Nonce`, `-Serial`), and the
//!   notification resource in AEAD_AES_256_GCM under the APIv3 key.
//! - [`unionpay`]: UnionPay 5.1.0 — the sorted `k=v&k=v` string (without
//!   `signature`) is hashed to lower-case SHA-256 hex, and that hex string is
//!   signed with SHA256withRSA.

pub mod alipay;
pub mod unionpay;
pub mod wechat;

use std::collections::BTreeMap;

/// Why a channel message is refused. Each is a distinct reason, so that a
/// refusal can be recorded and counted by kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// A field the protocol requires is missing or malformed.
    #[error("missing or malformed {0}")]
    Malformed(&'static str),
    /// The message names a signing key (certificate serial) we do not know.
    #[error("unknown key serial {0}")]
    UnknownSerial(String),
    /// The message's timestamp is outside the accepted window.
    #[error("timestamp outside the accepted window")]
    StaleTimestamp,
    /// An algorithm other than the one configured.
    #[error("unsupported algorithm {0}")]
    Algorithm(String),
    /// The encrypted resource does not decrypt (wrong key or tampered).
    #[error("resource does not decrypt")]
    Undecryptable,
    /// Signed by the provider, but for another merchant (app id, merchant
    /// id): the provider signs every merchant's notifications with one key.
    #[error("notification for another merchant")]
    OtherMerchant,
}

/// Parameters sorted by name (byte order, which is ASCII order for these
/// names), those with empty values and those in `exclude` left out, joined
/// as `k=v&k=v`, values as they are (not URL-encoded).
pub fn sorted_pairs(params: &BTreeMap<String, String>, exclude: &[&str]) -> String {
    params
        .iter()
        .filter(|(k, v)| !v.is_empty() && !exclude.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `k=v&k=v`, URL-encoded.
pub fn form_encode<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The pairs of a URL-encoded form (a repeated name keeps its last value).
pub fn form_decode(body: &[u8]) -> BTreeMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

#[cfg(test)]
pub(crate) mod vectors {
    //! The known-answer vectors of `tests/vectors/`.

    use crate::keys::{SigningKey, VerifyingKey};

    pub fn get(name: &str) -> String {
        let all: serde_json::Value =
            serde_json::from_str(include_str!("../tests/vectors/vectors.json")).unwrap();
        all[name].as_str().unwrap().to_owned()
    }

    pub fn merchant_key() -> SigningKey {
        SigningKey::from_pem(include_str!("../tests/vectors/merchant_key.pem")).unwrap()
    }

    pub fn merchant_public() -> VerifyingKey {
        VerifyingKey::from_pem(include_str!("../tests/vectors/merchant_pub.pem")).unwrap()
    }
}
