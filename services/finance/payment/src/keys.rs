//! RSA keys and SHA256withRSA (PKCS#1 v1.5) signatures, the primitive all
//! three channels sign with, through aws-lc-rs (already the process's TLS
//! provider). Keys come as PEM: private keys PKCS#8 (`PRIVATE KEY`) or
//! PKCS#1 (`RSA PRIVATE KEY`), public keys SubjectPublicKeyInfo (`PUBLIC
//! KEY`). Signatures travel base64-encoded, as every channel sends them.
//!
//! `Debug` never shows key material.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{
    KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not PEM, or PEM of another kind.
    #[error("not a PEM {expected} key")]
    Pem { expected: &'static str },
    /// PEM of the right kind whose contents are not an acceptable RSA key.
    #[error("not an acceptable RSA key (2048 to 8192 bits)")]
    Rejected,
}

/// A private key that signs.
pub struct SigningKey {
    pair: KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// A fresh 2048-bit key (the sandbox provider's, and tests').
    pub fn generate() -> Self {
        Self {
            pair: KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation"),
        }
    }

    /// A key from PEM.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let expected = "private";
        let block = pem::parse(text).map_err(|_| KeyError::Pem { expected })?;
        let pair = match block.tag() {
            "PRIVATE KEY" => KeyPair::from_pkcs8(block.contents()),
            "RSA PRIVATE KEY" => KeyPair::from_der(block.contents()),
            _ => return Err(KeyError::Pem { expected }),
        }
        .map_err(|_| KeyError::Rejected)?;
        Ok(Self { pair })
    }

    /// The key as PKCS#8 PEM (to hand a generated key to a peer in tests
    /// and the sandbox).
    pub fn to_pem(&self) -> String {
        let der: Pkcs8V1Der<'_> = self.pair.as_der().expect("PKCS#8 encoding");
        pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()))
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        let der: PublicKeyX509Der<'_> = self.pair.public_key().as_der().expect("SPKI encoding");
        VerifyingKey {
            spki: der.as_ref().to_vec(),
        }
    }

    /// SHA256withRSA over `message`, base64.
    pub fn sign(&self, message: &[u8]) -> String {
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .expect("RSA signing");
        STANDARD.encode(signature)
    }
}

/// A public key that verifies.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    spki: Vec<u8>,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifyingKey(..)")
    }
}

impl VerifyingKey {
    /// A key from `PUBLIC KEY` PEM.
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        let expected = "public";
        let block = pem::parse(text).map_err(|_| KeyError::Pem { expected })?;
        if block.tag() != "PUBLIC KEY" {
            return Err(KeyError::Pem { expected });
        }
        Ok(Self {
            spki: block.contents().to_vec(),
        })
    }

    /// The key as PEM.
    pub fn to_pem(&self) -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", self.spki.clone()))
    }

    /// Whether `signature` (base64) is SHA256withRSA over `message` by the
    /// private half of this key.
    pub fn verify(&self, message: &[u8], signature: &str) -> bool {
        let Ok(signature) = STANDARD.decode(signature.trim()) else {
            return false;
        };
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.spki)
            .verify(message, &signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_round_trip_and_tampering_fails() {
        let key = SigningKey::generate();
        let public = key.verifying_key();
        let signature = key.sign(b"amount=100");
        assert!(public.verify(b"amount=100", &signature));
        assert!(!public.verify(b"amount=101", &signature));
        assert!(!public.verify(b"amount=100", "not base64!"));
        let other = SigningKey::generate().verifying_key();
        assert!(!other.verify(b"amount=100", &signature));
        // PEM round trips.
        let again = SigningKey::from_pem(&key.to_pem()).unwrap();
        assert!(public.verify(b"x", &again.sign(b"x")));
        assert_eq!(VerifyingKey::from_pem(&public.to_pem()).unwrap(), public);
        assert_eq!(
            SigningKey::from_pem(&public.to_pem()).unwrap_err(),
            KeyError::Pem {
                expected: "private"
            }
        );
        assert!(!format!("{key:?}{public:?}").contains("MII"));
    }
}
