//! Alipay (open platform, RSA2).
//!
//! Requests: every parameter but `sign` (and empty ones), sorted and joined,
//! signed by the merchant's private key; `sign_type=RSA2` is part of the
//! signed string. Answers to Alipay's asynchronous notifications are
//! verified with Alipay's public key over every parameter but `sign` and
//! `sign_type`.

use std::collections::BTreeMap;

use super::{ChannelError, sorted_pairs};
use crate::keys::{SigningKey, VerifyingKey};

/// The string a request's signature covers.
pub fn request_string(params: &BTreeMap<String, String>) -> String {
    sorted_pairs(params, &["sign"])
}

/// The string a notification's signature covers.
pub fn notification_string(params: &BTreeMap<String, String>) -> String {
    sorted_pairs(params, &["sign", "sign_type"])
}

/// Signs a request in place: sets `sign_type=RSA2` and `sign`.
pub fn sign_request(params: &mut BTreeMap<String, String>, key: &SigningKey) {
    params.insert("sign_type".into(), "RSA2".into());
    params.remove("sign");
    let signature = key.sign(request_string(params).as_bytes());
    params.insert("sign".into(), signature);
}

/// Signs a notification in place (the sandbox provider's side).
pub fn sign_notification(params: &mut BTreeMap<String, String>, key: &SigningKey) {
    params.insert("sign_type".into(), "RSA2".into());
    params.remove("sign");
    let signature = key.sign(notification_string(params).as_bytes());
    params.insert("sign".into(), signature);
}

/// Verifies a notification with Alipay's public key.
pub fn verify_notification(
    params: &BTreeMap<String, String>,
    alipay: &VerifyingKey,
) -> Result<(), ChannelError> {
    match params.get("sign_type").map(String::as_str) {
        Some("RSA2") => {}
        Some(other) => return Err(ChannelError::Algorithm(other.to_owned())),
        None => return Err(ChannelError::Malformed("sign_type")),
    }
    let signature = params.get("sign").ok_or(ChannelError::Malformed("sign"))?;
    if alipay.verify(notification_string(params).as_bytes(), signature) {
        Ok(())
    } else {
        Err(ChannelError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::vectors;

    /// The parameters of the request in Alipay's signing guide.
    fn documented_request() -> BTreeMap<String, String> {
        [
            ("method", "alipay.mobile.public.menu.add"),
            ("charset", "GBK"),
            ("sign_type", "RSA2"),
            ("timestamp", "2014-07-24 03:07:50"),
            (
                "biz_content",
                r#"{"button":[{"actionParam":"ZFB_HFCZ","actionType":"out","name":"话费充值"}]}"#,
            ),
            ("version", "1.0"),
            ("app_id", "2014072300007148"),
            ("empty", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn the_documented_request_canonicalises_and_signs_as_openssl_does() {
        let mut params = documented_request();
        assert_eq!(request_string(&params), vectors::get("alipay_canonical"));
        sign_request(&mut params, &vectors::merchant_key());
        // PKCS#1 v1.5 is deterministic: the same bytes as `openssl dgst -sign`.
        assert_eq!(params["sign"], vectors::get("alipay_signature"));
    }

    #[test]
    fn notifications_verify_and_every_tampering_is_refused() {
        let alipay = SigningKey::generate();
        let public = alipay.verifying_key();
        let mut note: BTreeMap<String, String> = [
            ("out_trade_no", "pay_1"),
            ("trade_status", "TRADE_SUCCESS"),
            ("total_amount", "1.00"),
            ("notify_id", "n1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        sign_notification(&mut note, &alipay);
        assert_eq!(verify_notification(&note, &public), Ok(()));
        // A changed amount breaks the signature; only RSA2 is accepted.
        let mut amount = note.clone();
        amount.insert("total_amount".into(), "100.00".into());
        assert_eq!(
            verify_notification(&amount, &public),
            Err(ChannelError::BadSignature)
        );
        let mut rsa1 = note.clone();
        rsa1.insert("sign_type".into(), "RSA".into());
        assert_eq!(
            verify_notification(&rsa1, &public),
            Err(ChannelError::Algorithm("RSA".into()))
        );
        let mut unsigned = note.clone();
        unsigned.remove("sign");
        assert_eq!(
            verify_notification(&unsigned, &public),
            Err(ChannelError::Malformed("sign"))
        );
        let stranger = SigningKey::generate().verifying_key();
        assert_eq!(
            verify_notification(&note, &stranger),
            Err(ChannelError::BadSignature)
        );
    }
}
