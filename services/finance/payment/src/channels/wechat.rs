//! WeChat Pay API v3.
//!
//! Requests carry `Authorization: WECHATPAY2-SHA256-RSA2048 mchid=..,
//! nonce_str=.., signature=.., timestamp=.., serial_no=..`, the signature
//! SHA256withRSA over `method\nurl\ntimestamp\nnonce\nbody\n` by the
//! merchant's key. Answers and notifications are signed by the platform:
//! SHA256withRSA over `timestamp\nnonce\nbody\n`, sent in
//! `Wechatpay-Signature` with `-Timestamp`, `-Nonce` and `-Serial` (which
//! platform certificate signed). A notification's `resource` is encrypted
//! with AEAD_AES_256_GCM under the merchant's APIv3 key, with the resource's
//! `nonce` and `associated_data`.

use std::collections::HashMap;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::ChannelError;
use crate::keys::{SigningKey, VerifyingKey};

/// The authorisation scheme of API v3.
pub const SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";

/// The string a request's signature covers. `url` is the path with its
/// query, as sent.
pub fn request_message(method: &str, url: &str, timestamp: i64, nonce: &str, body: &str) -> String {
    format!("{method}\n{url}\n{timestamp}\n{nonce}\n{body}\n")
}

/// The string an answer's or notification's signature covers.
pub fn response_message(timestamp: i64, nonce: &str, body: &str) -> String {
    format!("{timestamp}\n{nonce}\n{body}\n")
}

/// The merchant's credentials for signing requests.
#[derive(Debug)]
pub struct Merchant<'a> {
    /// The merchant id.
    pub mchid: &'a str,
    /// The serial number of the merchant's API certificate.
    pub serial_no: &'a str,
    /// The merchant's private key.
    pub key: &'a SigningKey,
}

/// The `Authorization` header of a request.
pub fn authorization(
    merchant: &Merchant<'_>,
    method: &str,
    url: &str,
    timestamp: i64,
    nonce: &str,
    body: &str,
) -> String {
    let signature = merchant
        .key
        .sign(request_message(method, url, timestamp, nonce, body).as_bytes());
    format!(
        r#"{SCHEME} mchid="{}",nonce_str="{nonce}",signature="{signature}",timestamp="{timestamp}",serial_no="{}""#,
        merchant.mchid, merchant.serial_no
    )
}

/// A request's `Authorization`, read (the provider's side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The merchant id.
    pub mchid: String,
    /// `nonce_str`.
    pub nonce: String,
    /// The base64 signature.
    pub signature: String,
    /// Seconds since the epoch.
    pub timestamp: i64,
    /// The merchant certificate's serial.
    pub serial_no: String,
}

impl Authorization {
    /// Reads `WECHATPAY2-SHA256-RSA2048 k="v",k="v",...`.
    pub fn parse(header: &str) -> Result<Self, ChannelError> {
        let rest = header
            .strip_prefix(SCHEME)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or(ChannelError::Malformed("authorization scheme"))?;
        let mut fields = HashMap::new();
        for part in rest.split(',') {
            let (name, value) = part
                .trim()
                .split_once('=')
                .ok_or(ChannelError::Malformed("authorization"))?;
            fields.insert(name, value.trim_matches('"').to_owned());
        }
        let mut take =
            |name: &'static str| fields.remove(name).ok_or(ChannelError::Malformed(name));
        Ok(Self {
            mchid: take("mchid")?,
            nonce: take("nonce_str")?,
            signature: take("signature")?,
            timestamp: take("timestamp")?
                .parse()
                .map_err(|_| ChannelError::Malformed("timestamp"))?,
            serial_no: take("serial_no")?,
        })
    }

    /// Verifies the request it came with, by the merchant's key.
    pub fn verify(
        &self,
        method: &str,
        url: &str,
        body: &str,
        merchant: &VerifyingKey,
    ) -> Result<(), ChannelError> {
        let message = request_message(method, url, self.timestamp, &self.nonce, body);
        if merchant.verify(message.as_bytes(), &self.signature) {
            Ok(())
        } else {
            Err(ChannelError::BadSignature)
        }
    }
}

/// The signature headers of an answer or notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    /// `Wechatpay-Timestamp`, seconds since the epoch.
    pub timestamp: i64,
    /// `Wechatpay-Nonce`.
    pub nonce: String,
    /// `Wechatpay-Signature`, base64.
    pub signature: String,
    /// `Wechatpay-Serial`: which platform certificate signed.
    pub serial: String,
}

impl SignatureHeaders {
    /// Reads the four headers (names case-insensitive, as HTTP has them).
    pub fn from_headers<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ChannelError> {
        let mut found: HashMap<String, String> = HashMap::new();
        for (name, value) in headers {
            found.insert(name.to_ascii_lowercase(), value.trim().to_owned());
        }
        let mut take = |name: &'static str| {
            found
                .remove(name)
                .filter(|v| !v.is_empty())
                .ok_or(ChannelError::Malformed(name))
        };
        let timestamp = take("wechatpay-timestamp")?;
        Ok(Self {
            timestamp: timestamp
                .parse()
                .map_err(|_| ChannelError::Malformed("wechatpay-timestamp"))?,
            nonce: take("wechatpay-nonce")?,
            signature: take("wechatpay-signature")?,
            serial: take("wechatpay-serial")?,
        })
    }

    /// Signs `body` as the platform would (the sandbox provider's side).
    pub fn sign(key: &SigningKey, serial: &str, timestamp: i64, nonce: &str, body: &str) -> Self {
        Self {
            timestamp,
            nonce: nonce.to_owned(),
            signature: key.sign(response_message(timestamp, nonce, body).as_bytes()),
            serial: serial.to_owned(),
        }
    }
}

/// Verifies an answer or notification: a known platform serial, a timestamp
/// within `window_secs` of `now_secs`, and a good signature, in that order
/// (so that the refusal names the first thing wrong). Replayed nonces are
/// the caller's to catch: it keeps the ones it has seen.
pub fn verify(
    headers: &SignatureHeaders,
    body: &str,
    platform: &HashMap<String, VerifyingKey>,
    now_secs: i64,
    window_secs: i64,
) -> Result<(), ChannelError> {
    let key = platform
        .get(&headers.serial)
        .ok_or_else(|| ChannelError::UnknownSerial(headers.serial.clone()))?;
    // abs_diff: the timestamp comes from outside and may be anything.
    if now_secs.abs_diff(headers.timestamp) > window_secs.unsigned_abs() {
        return Err(ChannelError::StaleTimestamp);
    }
    let message = response_message(headers.timestamp, &headers.nonce, body);
    if key.verify(message.as_bytes(), &headers.signature) {
        Ok(())
    } else {
        Err(ChannelError::BadSignature)
    }
}

fn key_of(api_v3_key: &[u8]) -> Result<LessSafeKey, ChannelError> {
    UnboundKey::new(&AES_256_GCM, api_v3_key)
        .map(LessSafeKey::new)
        .map_err(|_| ChannelError::Malformed("APIv3 key (32 bytes)"))
}

fn nonce_of(nonce: &str) -> Result<Nonce, ChannelError> {
    Nonce::try_assume_unique_for_key(nonce.as_bytes())
        .map_err(|_| ChannelError::Malformed("resource nonce (12 bytes)"))
}

/// Decrypts a notification's resource (`ciphertext` is base64 of the
/// ciphertext followed by the 16-byte tag).
pub fn decrypt_resource(
    api_v3_key: &[u8],
    nonce: &str,
    associated_data: &str,
    ciphertext: &str,
) -> Result<Vec<u8>, ChannelError> {
    let key = key_of(api_v3_key)?;
    let mut data = STANDARD
        .decode(ciphertext.trim())
        .map_err(|_| ChannelError::Malformed("resource ciphertext"))?;
    let plain = key
        .open_in_place(
            nonce_of(nonce)?,
            Aad::from(associated_data.as_bytes()),
            &mut data,
        )
        .map_err(|_| ChannelError::Undecryptable)?;
    Ok(plain.to_vec())
}

/// Encrypts a resource as the platform does (the sandbox provider's side).
pub fn encrypt_resource(
    api_v3_key: &[u8],
    nonce: &str,
    associated_data: &str,
    plaintext: &[u8],
) -> Result<String, ChannelError> {
    let key = key_of(api_v3_key)?;
    let mut data = plaintext.to_vec();
    key.seal_in_place_append_tag(
        nonce_of(nonce)?,
        Aad::from(associated_data.as_bytes()),
        &mut data,
    )
    .map_err(|_| ChannelError::Undecryptable)?;
    Ok(STANDARD.encode(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::vectors;

    #[test]
    fn the_documented_request_line_signs_as_openssl_does() {
        let message = request_message(
            "GET",
            "/v3/certificates",
            1554208460,
            "593BEC0C930BF1AFEB40B4A08C8FB242",
            "",
        );
        assert_eq!(message, vectors::get("wechat_request_message"));
        let key = vectors::merchant_key();
        let merchant = Merchant {
            mchid: "1900009191",
            serial_no: "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",
            key: &key,
        };
        let header = authorization(
            &merchant,
            "GET",
            "/v3/certificates",
            1554208460,
            "593BEC0C930BF1AFEB40B4A08C8FB242",
            "",
        );
        let signature = vectors::get("wechat_request_signature");
        assert_eq!(
            header,
            format!(
                r#"WECHATPAY2-SHA256-RSA2048 mchid="1900009191",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",signature="{signature}",timestamp="1554208460",serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C""#
            )
        );
        assert!(vectors::merchant_public().verify(message.as_bytes(), &signature));
    }

    #[test]
    fn the_resource_decrypts_as_python_cryptography_encrypted_it() {
        let key = vectors::get("wechat_api_v3_key");
        let plain = decrypt_resource(
            key.as_bytes(),
            &vectors::get("wechat_nonce"),
            &vectors::get("wechat_associated_data"),
            &vectors::get("wechat_ciphertext"),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(plain).unwrap(),
            vectors::get("wechat_plaintext")
        );
        assert_eq!(
            encrypt_resource(
                key.as_bytes(),
                &vectors::get("wechat_nonce"),
                &vectors::get("wechat_associated_data"),
                vectors::get("wechat_plaintext").as_bytes()
            )
            .unwrap(),
            vectors::get("wechat_ciphertext")
        );
        // Another associated data, key or a flipped byte: refused.
        let wrong_ad = decrypt_resource(
            key.as_bytes(),
            &vectors::get("wechat_nonce"),
            "refund",
            &vectors::get("wechat_ciphertext"),
        );
        assert_eq!(wrong_ad, Err(ChannelError::Undecryptable));
        let wrong_key = decrypt_resource(
            b"fedcba9876543210fedcba9876543210",
            &vectors::get("wechat_nonce"),
            &vectors::get("wechat_associated_data"),
            &vectors::get("wechat_ciphertext"),
        );
        assert_eq!(wrong_key, Err(ChannelError::Undecryptable));
        assert!(decrypt_resource(b"short", "n", "a", "AAAA").is_err());
    }

    #[test]
    fn notifications_need_a_known_serial_a_fresh_time_and_a_good_signature() {
        let platform_key = SigningKey::generate();
        let platform = HashMap::from([("SERIAL1".to_owned(), platform_key.verifying_key())]);
        let body = r#"{"id":"evt","resource":{}}"#;
        let now = 1_795_600_800;
        let headers = SignatureHeaders::sign(&platform_key, "SERIAL1", now - 10, "n0nce", body);
        assert_eq!(verify(&headers, body, &platform, now, 300), Ok(()));
        assert_eq!(
            verify(&headers, "{}", &platform, now, 300),
            Err(ChannelError::BadSignature)
        );
        assert_eq!(
            verify(&headers, body, &platform, now + 400, 300),
            Err(ChannelError::StaleTimestamp)
        );
        let mut unknown = headers.clone();
        unknown.serial = "SERIAL2".into();
        assert_eq!(
            verify(&unknown, body, &platform, now, 300),
            Err(ChannelError::UnknownSerial("SERIAL2".into()))
        );
        let parsed = SignatureHeaders::from_headers([
            ("Wechatpay-Timestamp", "1795600790"),
            ("wechatpay-nonce", "n0nce"),
            ("Wechatpay-Signature", headers.signature.as_str()),
            ("Wechatpay-Serial", "SERIAL1"),
        ])
        .unwrap();
        assert_eq!(parsed, headers);
        assert_eq!(
            SignatureHeaders::from_headers([("Wechatpay-Nonce", "x")]),
            Err(ChannelError::Malformed("wechatpay-timestamp"))
        );
    }
}
