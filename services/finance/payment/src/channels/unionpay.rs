//! UnionPay (gateway API 5.1.0, `signMethod=01`).
//!
//! Every parameter but `signature`, sorted and joined as `k=v&k=v`, is
//! hashed with SHA-256 into a lower-case hex string, and that hex string is
//! signed with SHA256withRSA; the base64 signature travels in `signature`,
//! the signing certificate's id in `certId`. Answers and notifications are
//! verified the same way with the key of the certificate they name.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use super::{ChannelError, sorted_pairs};
use crate::keys::{SigningKey, VerifyingKey};

/// The string the digest covers.
pub fn signing_string(params: &BTreeMap<String, String>) -> String {
    sorted_pairs(params, &["signature"])
}

/// The lower-case SHA-256 hex of the signing string: what is signed.
pub fn digest(params: &BTreeMap<String, String>) -> String {
    hex::encode(Sha256::digest(signing_string(params).as_bytes()))
}

/// Signs in place: sets `signMethod=01`, `certId` and `signature`.
pub fn sign(params: &mut BTreeMap<String, String>, key: &SigningKey, cert_id: &str) {
    params.insert("signMethod".into(), "01".into());
    params.insert("certId".into(), cert_id.into());
    params.remove("signature");
    let signature = key.sign(digest(params).as_bytes());
    params.insert("signature".into(), signature);
}

/// Verifies with the key of the certificate the message names.
pub fn verify(
    params: &BTreeMap<String, String>,
    certificates: &HashMap<String, VerifyingKey>,
) -> Result<(), ChannelError> {
    match params.get("signMethod").map(String::as_str) {
        Some("01") => {}
        Some(other) => return Err(ChannelError::Algorithm(other.to_owned())),
        None => return Err(ChannelError::Malformed("signMethod")),
    }
    let cert_id = params
        .get("certId")
        .ok_or(ChannelError::Malformed("certId"))?;
    let key = certificates
        .get(cert_id)
        .ok_or_else(|| ChannelError::UnknownSerial(cert_id.clone()))?;
    let signature = params
        .get("signature")
        .ok_or(ChannelError::Malformed("signature"))?;
    if key.verify(digest(params).as_bytes(), signature) {
        Ok(())
    } else {
        Err(ChannelError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::vectors;

    fn consume_request() -> BTreeMap<String, String> {
        [
            ("version", "5.1.0"),
            ("encoding", "UTF-8"),
            ("txnType", "01"),
            ("txnSubType", "01"),
            ("bizType", "000201"),
            ("channelType", "07"),
            ("accessType", "0"),
            ("merId", "777290058110048"),
            ("orderId", "pay_1"),
            ("txnTime", "20261125100000"),
            ("txnAmt", "100"),
            ("currencyCode", "156"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn a_consume_request_digests_and_signs_as_openssl_does() {
        let mut params = consume_request();
        sign(&mut params, &vectors::merchant_key(), "68759663125");
        assert_eq!(signing_string(&params), vectors::get("unionpay_canonical"));
        assert_eq!(digest(&params), vectors::get("unionpay_digest"));
        assert_eq!(params["signature"], vectors::get("unionpay_signature"));
        let certificates = HashMap::from([("68759663125".to_owned(), vectors::merchant_public())]);
        assert_eq!(verify(&params, &certificates), Ok(()));
    }

    #[test]
    fn tampering_unknown_certificates_and_other_methods_are_refused() {
        let unionpay = SigningKey::generate();
        let certificates = HashMap::from([("69042905377".to_owned(), unionpay.verifying_key())]);
        let mut note = consume_request();
        note.insert("respCode".into(), "00".into());
        sign(&mut note, &unionpay, "69042905377");
        assert_eq!(verify(&note, &certificates), Ok(()));
        let mut amount = note.clone();
        amount.insert("txnAmt".into(), "10000".into());
        assert_eq!(
            verify(&amount, &certificates),
            Err(ChannelError::BadSignature)
        );
        let mut cert = note.clone();
        cert.insert("certId".into(), "1".into());
        assert_eq!(
            verify(&cert, &certificates),
            Err(ChannelError::UnknownSerial("1".into()))
        );
        let mut method = note.clone();
        method.insert("signMethod".into(), "11".into());
        assert_eq!(
            verify(&method, &certificates),
            Err(ChannelError::Algorithm("11".into()))
        );
    }
}
