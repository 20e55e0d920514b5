//! Password hashes of the `emqx_auth_clientid` / `emqx_auth_username` tables: salt ++ password
//! hashed with the configured algorithm (`auth.client.password_hash`, default sha256, as in
//! EMQ X), compared in constant time.
//!
//! Owns: [`HashAlgo`], [`PasswordHash`] and their text form for persistence. Pure. Must never:
//! keep a plaintext password, or compare hashes with `==` on the verification path.

use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use shardmq_http::auth::{constant_time_eq, random_bytes};

/// A hash algorithm of EMQ X's `password_hash` settings (md5 and plain are not offered: md5
/// is broken and plain would keep passwords readable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgo {
    Sha,
    Sha256,
    Sha512,
}

impl HashAlgo {
    /// The setting's values, in the order the config API lists them.
    pub const NAMES: [&'static str; 3] = ["sha", "sha256", "sha512"];

    pub fn parse(name: &str) -> Option<HashAlgo> {
        match name {
            "sha" => Some(HashAlgo::Sha),
            "sha256" => Some(HashAlgo::Sha256),
            "sha512" => Some(HashAlgo::Sha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Sha => "sha",
            HashAlgo::Sha256 => "sha256",
            HashAlgo::Sha512 => "sha512",
        }
    }

    fn digest(self, salt: &[u8], password: &[u8]) -> Vec<u8> {
        fn run<D: Digest>(salt: &[u8], password: &[u8]) -> Vec<u8> {
            let mut d = D::new();
            d.update(salt);
            d.update(password);
            d.finalize().to_vec()
        }
        match self {
            HashAlgo::Sha => run::<Sha1>(salt, password),
            HashAlgo::Sha256 => run::<Sha256>(salt, password),
            HashAlgo::Sha512 => run::<Sha512>(salt, password),
        }
    }
}

/// `algo(salt ++ password)` with its salt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordHash {
    pub algo: HashAlgo,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl PasswordHash {
    /// Hashes `password` with a fresh random salt.
    pub fn new(algo: HashAlgo, password: &[u8]) -> PasswordHash {
        PasswordHash::with_salt(algo, &random_bytes(), password)
    }

    pub fn with_salt(algo: HashAlgo, salt: &[u8], password: &[u8]) -> PasswordHash {
        PasswordHash {
            algo,
            salt: salt.to_vec(),
            hash: algo.digest(salt, password),
        }
    }

    /// Whether `password` matches, in time independent of where the bytes differ.
    pub fn verify(&self, password: &[u8]) -> bool {
        constant_time_eq(&self.algo.digest(&self.salt, password), &self.hash)
    }

    /// The hash without the salt, hex: what `GET /auth_clientid/:id` shows (as EMQ X does).
    pub fn hash_hex(&self) -> String {
        hex(&self.hash)
    }

    /// `<algo>$<salt hex>$<hash hex>`.
    pub fn encode(&self) -> String {
        format!(
            "{}${}${}",
            self.algo.name(),
            hex(&self.salt),
            hex(&self.hash)
        )
    }

    /// Parses what [`PasswordHash::encode`] wrote.
    pub fn decode(s: &str) -> Option<PasswordHash> {
        let mut parts = s.split('$');
        let algo = HashAlgo::parse(parts.next()?)?;
        let salt = unhex(parts.next()?)?;
        let hash = unhex(parts.next()?)?;
        if parts.next().is_some() {
            return None;
        }
        Some(PasswordHash { algo, salt, hash })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_verifies_round_trips_and_hides_the_password() {
        for name in HashAlgo::NAMES {
            let algo = HashAlgo::parse(name).unwrap();
            let h = PasswordHash::new(algo, b"s3cret");
            assert!(h.verify(b"s3cret"));
            assert!(!h.verify(b"s3cret "));
            assert!(!h.verify(b""));
            let text = h.encode();
            assert!(!text.contains("s3cret"));
            assert_eq!(PasswordHash::decode(&text), Some(h.clone()));
            assert!(!h.hash_hex().is_empty());
        }
        // Same password, different salts: different hashes.
        let a = PasswordHash::new(HashAlgo::Sha256, b"x");
        let b = PasswordHash::new(HashAlgo::Sha256, b"x");
        assert_ne!(a.hash_hex(), b.hash_hex());
        assert_eq!(PasswordHash::decode("md5$00$00"), None);
        assert_eq!(PasswordHash::decode("sha256$0$00"), None);
    }

    #[test]
    fn sha256_is_salt_then_password() {
        let h = PasswordHash::with_salt(HashAlgo::Sha256, b"salt", b"pw");
        let mut d = Sha256::new();
        d.update(b"saltpw");
        assert_eq!(h.hash_hex(), hex(&d.finalize()));
    }
}
