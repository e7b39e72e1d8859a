//! Who we are to each channel and how we know the channel: merchant ids,
//! our private keys, the channels' public keys. Read from a JSON file
//! (`--payment-channels-file`); with none, `meshwork up` makes a fresh set
//! shared with the sandbox provider ([`pair_with_sandbox`]).
//!
//! Key material never reaches a log: `Debug` shows ids and endpoints only.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::keys::{KeyError, SigningKey, VerifyingKey};

/// The file's shape: one optional section per channel.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelsFile {
    /// Alipay.
    pub alipay: Option<AlipayFile>,
    /// WeChat Pay.
    pub wechat_pay: Option<WechatFile>,
    /// UnionPay.
    pub unionpay: Option<UnionPayFile>,
}

/// Alipay's section.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlipayFile {
    /// The gateway URL (`.../gateway.do`).
    pub endpoint: String,
    /// Our app id.
    pub app_id: String,
    /// Our private key, PEM.
    pub merchant_private_key: String,
    /// Alipay's public key, PEM.
    pub alipay_public_key: String,
}

/// WeChat Pay's section.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatFile {
    /// The API base URL (`https://api.mch.weixin.qq.com`).
    pub endpoint: String,
    /// Our merchant id.
    pub mchid: String,
    /// Our app id.
    pub appid: String,
    /// The serial of our API certificate.
    pub merchant_serial: String,
    /// Our private key, PEM.
    pub merchant_private_key: String,
    /// The platform's public keys by certificate serial, PEM.
    pub platform_certificates: BTreeMap<String, String>,
    /// The APIv3 key (32 bytes) that encrypts notification resources.
    pub api_v3_key: String,
}

/// UnionPay's section.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnionPayFile {
    /// The gateway base URL (`.../gateway/api`).
    pub endpoint: String,
    /// Our merchant id.
    pub mer_id: String,
    /// The id of our signing certificate.
    pub cert_id: String,
    /// Our private key, PEM.
    pub merchant_private_key: String,
    /// UnionPay's public keys by certificate id, PEM.
    pub certificates: BTreeMap<String, String>,
}

macro_rules! redacted_debug {
    ($ty:ty, $($field:ident),*) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &self.$field))*
                    .finish_non_exhaustive()
            }
        }
    };
}
redacted_debug!(AlipayFile, endpoint, app_id);
redacted_debug!(WechatFile, endpoint, mchid, merchant_serial);
redacted_debug!(UnionPayFile, endpoint, mer_id, cert_id);

/// Alipay, ready to use.
#[derive(Debug)]
pub struct Alipay {
    /// The gateway URL.
    pub endpoint: String,
    /// Our app id.
    pub app_id: String,
    /// Signs our requests.
    pub merchant_key: SigningKey,
    /// Verifies Alipay's answers and notifications.
    pub alipay_key: VerifyingKey,
}

/// WeChat Pay, ready to use.
pub struct Wechat {
    /// The API base URL.
    pub endpoint: String,
    /// Our merchant id.
    pub mchid: String,
    /// Our app id.
    pub appid: String,
    /// The serial of our API certificate.
    pub merchant_serial: String,
    /// Signs our requests.
    pub merchant_key: SigningKey,
    /// Verifies answers and notifications, by serial.
    pub platform: HashMap<String, VerifyingKey>,
    /// Decrypts notification resources.
    pub api_v3_key: Vec<u8>,
}

redacted_debug!(Wechat, endpoint, mchid, merchant_serial);

/// UnionPay, ready to use.
#[derive(Debug)]
pub struct UnionPay {
    /// The gateway base URL.
    pub endpoint: String,
    /// Our merchant id.
    pub mer_id: String,
    /// The id of our signing certificate.
    pub cert_id: String,
    /// Signs our requests.
    pub merchant_key: SigningKey,
    /// Verifies answers and notifications, by certificate id.
    pub certificates: HashMap<String, VerifyingKey>,
}

/// Every configured channel.
#[derive(Debug, Default)]
pub struct Credentials {
    /// Alipay, when configured.
    pub alipay: Option<Alipay>,
    /// WeChat Pay, when configured.
    pub wechat: Option<Wechat>,
    /// UnionPay, when configured.
    pub unionpay: Option<UnionPay>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Not the JSON this module reads.
    #[error("channels file: {0}")]
    Json(String),
    /// A key that does not load.
    #[error("{what}: {source}")]
    Key {
        what: String,
        #[source]
        source: KeyError,
    },
    /// The APIv3 key is not 32 bytes.
    #[error("wechat_pay.api_v3_key must be 32 bytes")]
    ApiV3Key,
}

fn private(what: &str, pem: &str) -> Result<SigningKey, CredentialsError> {
    SigningKey::from_pem(pem).map_err(|source| CredentialsError::Key {
        what: what.to_owned(),
        source,
    })
}

fn public(what: &str, pem: &str) -> Result<VerifyingKey, CredentialsError> {
    VerifyingKey::from_pem(pem).map_err(|source| CredentialsError::Key {
        what: what.to_owned(),
        source,
    })
}

impl Credentials {
    /// Reads the JSON of a channels file.
    pub fn from_json(text: &str) -> Result<Self, CredentialsError> {
        let file: ChannelsFile = serde_json::from_str(text).map_err(|e| {
            // Where, not what: serde's message may quote a value, and
            // values here are keys.
            CredentialsError::Json(format!(
                "not the expected JSON ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        Self::from_file(&file)
    }

    /// Loads the keys of a parsed file.
    pub fn from_file(file: &ChannelsFile) -> Result<Self, CredentialsError> {
        let alipay = match &file.alipay {
            None => None,
            Some(a) => Some(Alipay {
                endpoint: a.endpoint.clone(),
                app_id: a.app_id.clone(),
                merchant_key: private("alipay.merchant_private_key", &a.merchant_private_key)?,
                alipay_key: public("alipay.alipay_public_key", &a.alipay_public_key)?,
            }),
        };
        let wechat = match &file.wechat_pay {
            None => None,
            Some(w) => {
                if w.api_v3_key.len() != 32 {
                    return Err(CredentialsError::ApiV3Key);
                }
                let mut platform = HashMap::new();
                for (serial, pem) in &w.platform_certificates {
                    let what = format!("wechat_pay.platform_certificates.{serial}");
                    platform.insert(serial.clone(), public(&what, pem)?);
                }
                Some(Wechat {
                    endpoint: w.endpoint.clone(),
                    mchid: w.mchid.clone(),
                    appid: w.appid.clone(),
                    merchant_serial: w.merchant_serial.clone(),
                    merchant_key: private(
                        "wechat_pay.merchant_private_key",
                        &w.merchant_private_key,
                    )?,
                    platform,
                    api_v3_key: w.api_v3_key.as_bytes().to_vec(),
                })
            }
        };
        let unionpay = match &file.unionpay {
            None => None,
            Some(u) => {
                let mut certificates = HashMap::new();
                for (id, pem) in &u.certificates {
                    let what = format!("unionpay.certificates.{id}");
                    certificates.insert(id.clone(), public(&what, pem)?);
                }
                Some(UnionPay {
                    endpoint: u.endpoint.clone(),
                    mer_id: u.mer_id.clone(),
                    cert_id: u.cert_id.clone(),
                    merchant_key: private(
                        "unionpay.merchant_private_key",
                        &u.merchant_private_key,
                    )?,
                    certificates,
                })
            }
        };
        Ok(Self {
            alipay,
            wechat,
            unionpay,
        })
    }
}

/// The sandbox provider's side of the same relationship: its own private
/// keys and our public key.
pub struct SandboxKeys {
    /// Signs Alipay answers and notifications.
    pub alipay: SigningKey,
    /// Signs WeChat Pay answers and notifications.
    pub wechat_platform: SigningKey,
    /// Its serial.
    pub wechat_serial: String,
    /// Encrypts WeChat Pay notification resources.
    pub api_v3_key: Vec<u8>,
    /// Signs UnionPay answers and notifications.
    pub unionpay: SigningKey,
    /// Its certificate id.
    pub unionpay_cert_id: String,
    /// Verifies the merchant's requests (one key for all three channels).
    pub merchant: VerifyingKey,
    /// The merchant's ids: Alipay app id, WeChat mchid, UnionPay merId.
    pub merchant_ids: [String; 3],
}

redacted_debug!(SandboxKeys, wechat_serial, unionpay_cert_id, merchant_ids);

/// The id of the merchant's UnionPay signing certificate in a generated
/// pair.
pub const SANDBOX_MERCHANT_CERT_ID: &str = "68759663125";

/// A fresh set of keys for us and the sandbox provider at `sandbox_url`
/// (its base URL, e.g. `http://127.0.0.1:8090`): what `meshwork up` and
/// the tests use.
pub fn pair_with_sandbox(sandbox_url: &str) -> (ChannelsFile, SandboxKeys) {
    let base = sandbox_url.trim_end_matches('/');
    let merchant = SigningKey::generate();
    let alipay = SigningKey::generate();
    let platform = SigningKey::generate();
    let unionpay = SigningKey::generate();
    // Random, so that a sandbox's keys are never a fixed, known secret.
    let api_v3_key: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(32)
        .collect();
    let ids = [
        "2026112400000001".to_owned(),
        "1900000109".to_owned(),
        "777290058110048".to_owned(),
    ];
    let file = ChannelsFile {
        alipay: Some(AlipayFile {
            endpoint: format!("{base}/alipay/gateway.do"),
            app_id: ids[0].clone(),
            merchant_private_key: merchant.to_pem(),
            alipay_public_key: alipay.verifying_key().to_pem(),
        }),
        wechat_pay: Some(WechatFile {
            endpoint: format!("{base}/wechat"),
            mchid: ids[1].clone(),
            appid: "wxd678efh567hg6787".to_owned(),
            merchant_serial: "5157F09EFDC096DE15EBE81A47057A7232F1B8E1".to_owned(),
            merchant_private_key: merchant.to_pem(),
            platform_certificates: BTreeMap::from([(
                "SANDBOX-PLATFORM-1".to_owned(),
                platform.verifying_key().to_pem(),
            )]),
            api_v3_key: api_v3_key.clone(),
        }),
        unionpay: Some(UnionPayFile {
            endpoint: format!("{base}/unionpay/gateway/api"),
            mer_id: ids[2].clone(),
            cert_id: SANDBOX_MERCHANT_CERT_ID.to_owned(),
            merchant_private_key: merchant.to_pem(),
            certificates: BTreeMap::from([(
                "69042905377".to_owned(),
                unionpay.verifying_key().to_pem(),
            )]),
        }),
    };
    let keys = SandboxKeys {
        merchant: merchant.verifying_key(),
        alipay,
        wechat_platform: platform,
        wechat_serial: "SANDBOX-PLATFORM-1".to_owned(),
        api_v3_key: api_v3_key.into_bytes(),
        unionpay,
        unionpay_cert_id: "69042905377".to_owned(),
        merchant_ids: ids,
    };
    (file, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_loads_and_debug_hides_keys() {
        let (file, keys) = pair_with_sandbox("http://127.0.0.1:1/");
        let credentials = Credentials::from_file(&file).unwrap();
        let wechat = credentials.wechat.as_ref().unwrap();
        assert!(wechat.platform.contains_key(&keys.wechat_serial));
        assert_eq!(
            credentials.alipay.as_ref().unwrap().endpoint,
            "http://127.0.0.1:1/alipay/gateway.do"
        );
        let shown = format!("{credentials:?} {file:?} {keys:?}");
        assert!(!shown.contains("PRIVATE KEY") && !shown.contains(&wechat_key(&file)));
    }

    fn wechat_key(file: &ChannelsFile) -> String {
        file.wechat_pay.as_ref().unwrap().api_v3_key.clone()
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        assert!(matches!(
            Credentials::from_json("{\"alipay\": 1}"),
            Err(CredentialsError::Json(_))
        ));
        let (mut file, _) = pair_with_sandbox("http://x");
        file.unionpay.as_mut().unwrap().merchant_private_key = "nope".into();
        let error = Credentials::from_file(&file).unwrap_err().to_string();
        assert!(error.contains("unionpay.merchant_private_key"), "{error}");
    }
}
