//! User passwords: argon2id hashing in PHC string format (RFC 9106; OWASP Password Storage Cheat Sheet).
//!
//! ```text
//! $argon2id$v=19$m=19456,t=2,p=1$<16-byte salt, base64>$<32-byte hash, base64>
//! ```
//! - The salt is 16 bytes from the caller's [`Entropy`] (the crate never asks the OS).
//! - The default [`PasswordPolicy`] is OWASP's: 19 MiB of memory, 2 passes, 1 lane.
//! - Passwords are hashed as the UTF-8 bytes given (no normalisation), and must be 1 to
//!   [`MAX_PASSWORD_LEN`] bytes: argon2 accepts far longer input, but hashing megabytes per login attempt is a
//!   cheap denial of service.
//! - [`verify_password`] recomputes the hash with the stored parameters and compares in constant time
//!   (argon2's `Output` equality). Stored parameters above [`MAX_MEMORY_KIB`] / [`MAX_ITERATIONS`] /
//!   [`MAX_PARALLELISM`] are refused, so a corrupted or hostile row cannot make one login allocate gigabytes.
//! - A login for an unknown user calls [`verify_dummy`], which costs what a real verification costs, so
//!   response time does not reveal which accounts exist.
//! - [`needs_rehash`] tells, after a successful login, whether to re-hash under the current policy.
//!
//! ```
//! use authflow_core::entropy::SeededEntropy;
//! use authflow_core::password::{hash_password_with, needs_rehash, verify_password, PasswordPolicy};
//!
//! let policy = PasswordPolicy::insecure_fast_for_tests();
//! let phc = hash_password_with("correct horse", &policy, &mut SeededEntropy::new(1))?;
//! assert!(verify_password("correct horse", &phc)?);
//! assert!(!verify_password("battery staple", &phc)?);
//! assert!(needs_rehash(&phc, &PasswordPolicy::default()));
//! # Ok::<(), authflow_core::password::PasswordError>(())
//! ```

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use crate::entropy::Entropy;
use crate::error::{ErrorCode, OAuthError};

/// Longest password accepted, in bytes.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Salt bytes in every new hash (RFC 9106 §3.1 recommends 16).
pub const SALT_BYTES: usize = 16;
/// Most memory (KiB) a policy or a stored hash may ask for: 1 GiB.
pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
/// Most passes a policy or a stored hash may ask for.
pub const MAX_ITERATIONS: u32 = 32;
/// Most lanes a policy or a stored hash may ask for.
pub const MAX_PARALLELISM: u32 = 16;

/// An argon2id hash (default policy, fixed salt) of a password nobody knows, for [`verify_dummy`].
/// A test recomputes it, so it cannot drift from [`PasswordPolicy::OWASP`].
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$YXV0aGZsb3ctZHVtbXktcw$a6EkhrbSEHqDB46XqRQSkp6pdCS0fQeRjxFvP5GX+yg";

/// The password [`DUMMY_HASH`] is the hash of. It need not be secret: [`verify_dummy`] answers `false`
/// whatever it is given.
const DUMMY_PASSWORD: &[u8] = b"authflow dummy password: no account has it";
/// The salt of [`DUMMY_HASH`] and [`dummy_hash`].
const DUMMY_SALT: &[u8; SALT_BYTES] = b"authflow-dummy-s";

/// Why a password could not be hashed or checked. Messages never contain the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// The password is empty.
    #[error("the password is empty")]
    Empty,
    /// The password is longer than [`MAX_PASSWORD_LEN`] bytes.
    #[error("the password is longer than {MAX_PASSWORD_LEN} bytes")]
    TooLong,
    /// The stored hash is not an argon2 PHC string, or its parameters exceed the limits.
    #[error("the stored password hash is invalid")]
    InvalidHash,
    /// The policy's parameters are outside what argon2 or the limits allow.
    #[error("the password policy's parameters are invalid")]
    InvalidPolicy,
    /// Hashing failed (an argon2 error that valid inputs never cause).
    #[error("password hashing failed")]
    Hashing,
}

impl From<PasswordError> for OAuthError {
    /// A refused password is `invalid_request`; a broken hash or policy is `server_error`.
    fn from(e: PasswordError) -> Self {
        let code = match e {
            PasswordError::Empty | PasswordError::TooLong => ErrorCode::InvalidRequest,
            _ => ErrorCode::ServerError,
        };
        OAuthError::with_description(code, e.to_string())
    }
}

/// Argon2id cost parameters for new hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PasswordPolicy {
    /// Memory in KiB (`m`).
    pub memory_kib: u32,
    /// Passes over memory (`t`).
    pub iterations: u32,
    /// Lanes (`p`).
    pub parallelism: u32,
}

impl PasswordPolicy {
    /// OWASP's recommendation for argon2id: m = 19456 KiB, t = 2, p = 1.
    pub const OWASP: PasswordPolicy = PasswordPolicy { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 };

    /// The cheapest parameters argon2 allows (8 KiB, one pass). **Only for tests**: such hashes are cheap to
    /// brute-force.
    pub const fn insecure_fast_for_tests() -> PasswordPolicy {
        PasswordPolicy { memory_kib: 8, iterations: 1, parallelism: 1 }
    }

    fn params(&self) -> Result<Params, PasswordError> {
        if self.memory_kib > MAX_MEMORY_KIB || self.iterations > MAX_ITERATIONS || self.parallelism > MAX_PARALLELISM {
            return Err(PasswordError::InvalidPolicy);
        }
        Params::new(self.memory_kib, self.iterations, self.parallelism, None).map_err(|_| PasswordError::InvalidPolicy)
    }

    fn hasher(&self) -> Result<Argon2<'static>, PasswordError> {
        Ok(Argon2::new(argon2::Algorithm::Argon2id, Version::V0x13, self.params()?))
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy::OWASP
    }
}

fn check_password(password: &str) -> Result<(), PasswordError> {
    match password.len() {
        0 => Err(PasswordError::Empty),
        n if n > MAX_PASSWORD_LEN => Err(PasswordError::TooLong),
        _ => Ok(()),
    }
}

fn hash_with_salt(password: &[u8], policy: &PasswordPolicy, salt: &[u8]) -> Result<String, PasswordError> {
    let hasher = policy.hasher()?;
    let salt = SaltString::encode_b64(salt).map_err(|_| PasswordError::Hashing)?;
    let hash = hasher.hash_password(password, &salt).map_err(|_| PasswordError::Hashing)?;
    Ok(hash.to_string())
}

/// Hash `password` under the default ([`PasswordPolicy::OWASP`]) policy with a fresh salt from `entropy`.
pub fn hash_password(password: &str, entropy: &mut impl Entropy) -> Result<String, PasswordError> {
    hash_password_with(password, &PasswordPolicy::default(), entropy)
}

/// Hash `password` under `policy` with a fresh salt from `entropy`.
pub fn hash_password_with(
    password: &str,
    policy: &PasswordPolicy,
    entropy: &mut impl Entropy,
) -> Result<String, PasswordError> {
    check_password(password)?;
    let mut salt = [0u8; SALT_BYTES];
    entropy.fill_bytes(&mut salt);
    hash_with_salt(password.as_bytes(), policy, &salt)
}

/// Parse a stored hash and refuse parameters beyond the limits.
fn parse_stored(phc: &str) -> Result<(PasswordHash<'_>, Params), PasswordError> {
    let hash = PasswordHash::new(phc).map_err(|_| PasswordError::InvalidHash)?;
    argon2::Algorithm::try_from(hash.algorithm).map_err(|_| PasswordError::InvalidHash)?;
    // Bound the costs before argon2 sees them: besides the work, its parameter check computes `p * 8` in
    // 32 bits, which overflows (a panic in debug builds) for a huge `p`.
    for (name, value) in hash.params.iter() {
        let limit = match name.as_str() {
            "m" => MAX_MEMORY_KIB,
            "t" => MAX_ITERATIONS,
            "p" => MAX_PARALLELISM,
            _ => continue,
        };
        if value.decimal().map_or(true, |v| v > limit) {
            return Err(PasswordError::InvalidHash);
        }
    }
    let params = Params::try_from(&hash).map_err(|_| PasswordError::InvalidHash)?;
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(PasswordError::InvalidHash);
    }
    Ok((hash, params))
}

/// Whether `password` matches the stored PHC string `phc`. `Ok(false)` for a wrong password; an error for an
/// empty or too-long password or a stored hash that is not valid (see the module docs).
pub fn verify_password(password: &str, phc: &str) -> Result<bool, PasswordError> {
    check_password(password)?;
    let (hash, _) = parse_stored(phc)?;
    // The hasher's own parameters are ignored: verification uses the ones in the stored string.
    match Argon2::default().verify_password(password.as_bytes(), &hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(_) => Err(PasswordError::InvalidHash),
    }
}

/// The work of [`verify_password`] against [`DUMMY_HASH`], for a login whose user does not exist: same
/// checks, same errors, same cost (under the default policy), and always `Ok(false)` otherwise. With
/// another policy, verify against [`dummy_hash`]`(policy)` computed once at start-up instead.
pub fn verify_dummy(password: &str) -> Result<bool, PasswordError> {
    verify_password(password, DUMMY_HASH).map(|_| false)
}

/// A dummy hash under `policy` (fixed salt, unknown password), to verify against when the user does not
/// exist so that the cost matches real hashes under that policy. Compute it once and keep it.
pub fn dummy_hash(policy: &PasswordPolicy) -> Result<String, PasswordError> {
    hash_with_salt(DUMMY_PASSWORD, policy, DUMMY_SALT)
}

/// Whether the stored hash should be recomputed under `policy` (at the next successful login): it is not
/// argon2id version 0x13 with exactly the policy's parameters, its salt is shorter than [`SALT_BYTES`], or
/// it cannot be parsed at all.
pub fn needs_rehash(phc: &str, policy: &PasswordPolicy) -> bool {
    let Ok((hash, params)) = parse_stored(phc) else { return true };
    let argon2id = hash.algorithm == argon2::Algorithm::Argon2id.ident();
    let current = hash.version == Some(Version::V0x13.into());
    let same = params.m_cost() == policy.memory_kib
        && params.t_cost() == policy.iterations
        && params.p_cost() == policy.parallelism
        && params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN) == Params::DEFAULT_OUTPUT_LEN;
    let mut salt = [0u8; 64];
    let salt_ok = hash.salt.and_then(|s| s.decode_b64(&mut salt).ok()).is_some_and(|s| s.len() >= SALT_BYTES);
    !(argon2id && current && same && salt_ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;
    use proptest::prelude::*;

    const FAST: PasswordPolicy = PasswordPolicy::insecure_fast_for_tests();

    fn fast_hash(password: &str, seed: u64) -> String {
        hash_password_with(password, &FAST, &mut SeededEntropy::new(seed)).unwrap()
    }

    #[test]
    fn hash_and_verify() {
        let phc = fast_hash("hunter2", 1);
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert!(verify_password("hunter2", &phc).unwrap());
        assert!(!verify_password("hunter3", &phc).unwrap());
        assert!(!verify_password("Hunter2", &phc).unwrap());
        // A fresh salt each time: same password, different hashes, both verify.
        let again = hash_password_with("hunter2", &FAST, &mut SeededEntropy::new(2)).unwrap();
        assert_ne!(phc, again);
        assert!(verify_password("hunter2", &again).unwrap());
        // Deterministic given the entropy.
        assert_eq!(phc, fast_hash("hunter2", 1));
        // Unicode passwords are hashed as their UTF-8 bytes.
        let uni = fast_hash("pässwörd 🔑", 3);
        assert!(verify_password("pässwörd 🔑", &uni).unwrap());
        assert!(!verify_password("passwo\u{308}rd 🔑", &uni).unwrap(), "no normalisation");
    }

    #[test]
    fn salt_is_sixteen_bytes_from_the_entropy() {
        let phc = fast_hash("x", 9);
        let hash = PasswordHash::new(&phc).unwrap();
        let mut buf = [0u8; 64];
        let salt = hash.salt.unwrap().decode_b64(&mut buf).unwrap().to_vec();
        let mut expected = [0u8; SALT_BYTES];
        SeededEntropy::new(9).fill_bytes(&mut expected);
        assert_eq!(salt, expected);
        assert_eq!(hash.hash.unwrap().len(), 32);
    }

    #[test]
    fn refuses_empty_and_long_passwords() {
        let mut e = SeededEntropy::new(1);
        assert_eq!(hash_password_with("", &FAST, &mut e), Err(PasswordError::Empty));
        let long = "a".repeat(MAX_PASSWORD_LEN + 1);
        assert_eq!(hash_password_with(&long, &FAST, &mut e), Err(PasswordError::TooLong));
        assert!(hash_password_with(&"a".repeat(MAX_PASSWORD_LEN), &FAST, &mut e).is_ok());
        let phc = fast_hash("ok", 1);
        assert_eq!(verify_password("", &phc), Err(PasswordError::Empty));
        assert_eq!(verify_password(&long, &phc), Err(PasswordError::TooLong));
        assert_eq!(verify_dummy(""), Err(PasswordError::Empty));
        assert_eq!(verify_dummy(&long), Err(PasswordError::TooLong));
        // Length is in bytes: 342 three-byte characters exceed 1024.
        assert_eq!(hash_password_with(&"€".repeat(342), &FAST, &mut e), Err(PasswordError::TooLong));
    }

    #[test]
    fn refuses_invalid_stored_hashes() {
        let good = fast_hash("pw", 1);
        let bad = [
            String::new(),
            "plaintext".into(),
            "$argon2id$".into(),
            good.replace("argon2id", "argon2x"),
            good.replace("argon2id", "scrypt"),
            good.replace("m=8", "m=abc"),
            good.replace("m=8", "m=4"),
            good.replace("m=8", &format!("m={}", MAX_MEMORY_KIB + 1)),
            good.replace("t=1", &format!("t={}", MAX_ITERATIONS + 1)),
            good.replace("p=1", "p=17"),
            good.rsplit_once('$').unwrap().0.to_owned(),
            format!("{good}$extra"),
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW".into(),
        ];
        for phc in &bad {
            assert_eq!(verify_password("pw", phc), Err(PasswordError::InvalidHash), "{phc:?}");
            assert!(needs_rehash(phc, &FAST), "{phc:?}");
        }
    }

    #[test]
    fn policies() {
        assert_eq!(PasswordPolicy::default(), PasswordPolicy { memory_kib: 19456, iterations: 2, parallelism: 1 });
        for bad in [
            PasswordPolicy { memory_kib: 7, ..FAST },
            PasswordPolicy { iterations: 0, ..FAST },
            PasswordPolicy { parallelism: 0, ..FAST },
            PasswordPolicy { memory_kib: 8, parallelism: 2, ..FAST },
            PasswordPolicy { memory_kib: MAX_MEMORY_KIB + 1, ..FAST },
            PasswordPolicy { iterations: MAX_ITERATIONS + 1, ..FAST },
        ] {
            assert_eq!(hash_password_with("pw", &bad, &mut SeededEntropy::new(1)), Err(PasswordError::InvalidPolicy));
            assert_eq!(dummy_hash(&bad), Err(PasswordError::InvalidPolicy));
        }
        let json = serde_json::to_value(PasswordPolicy::OWASP).unwrap();
        assert_eq!(json, serde_json::json!({"memory_kib": 19456, "iterations": 2, "parallelism": 1}));
    }

    #[test]
    fn rehash_decisions() {
        let phc = fast_hash("pw", 1);
        assert!(!needs_rehash(&phc, &FAST));
        assert!(needs_rehash(&phc, &PasswordPolicy::OWASP));
        assert!(needs_rehash(&phc, &PasswordPolicy { iterations: 2, ..FAST }));
        // argon2i with the same parameters verifies but should move to argon2id.
        let argon2i = Argon2::new(argon2::Algorithm::Argon2i, Version::V0x13, FAST.params().unwrap());
        let salt = SaltString::encode_b64(&[7u8; SALT_BYTES]).unwrap();
        let legacy = argon2i.hash_password(b"pw", &salt).unwrap().to_string();
        assert!(verify_password("pw", &legacy).unwrap());
        assert!(needs_rehash(&legacy, &FAST));
        // Version 0x10 likewise.
        let old = Argon2::new(argon2::Algorithm::Argon2id, Version::V0x10, FAST.params().unwrap());
        let old = old.hash_password(b"pw", &salt).unwrap().to_string();
        assert!(verify_password("pw", &old).unwrap());
        assert!(needs_rehash(&old, &FAST));
        // A short salt.
        let short = SaltString::encode_b64(&[7u8; 8]).unwrap();
        let short = FAST.hasher().unwrap().hash_password(b"pw", &short).unwrap().to_string();
        assert!(verify_password("pw", &short).unwrap());
        assert!(needs_rehash(&short, &FAST));
        // Another output length.
        let params = Params::new(8, 1, 1, Some(16)).unwrap();
        let short_out = Argon2::new(argon2::Algorithm::Argon2id, Version::V0x13, params);
        let short_out = short_out.hash_password(b"pw", &salt).unwrap().to_string();
        assert!(verify_password("pw", &short_out).unwrap());
        assert!(needs_rehash(&short_out, &FAST));
    }

    #[test]
    fn dummy_hash_matches_the_default_policy() {
        // The constant is what the default policy produces, so the unknown-user path costs the same.
        assert_eq!(dummy_hash(&PasswordPolicy::default()).unwrap(), DUMMY_HASH);
        assert!(!needs_rehash(DUMMY_HASH, &PasswordPolicy::default()));
        assert_eq!(verify_dummy("anything"), Ok(false));
        // Even the dummy password itself is refused.
        assert_eq!(verify_dummy(std::str::from_utf8(DUMMY_PASSWORD).unwrap()), Ok(false));
        let fast_dummy = dummy_hash(&FAST).unwrap();
        assert!(!needs_rehash(&fast_dummy, &FAST));
        assert_eq!(verify_password("anything", &fast_dummy), Ok(false));
    }

    #[test]
    fn default_hash_uses_owasp_parameters() {
        let phc = hash_password("correct horse battery staple", &mut SeededEntropy::new(4)).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!needs_rehash(&phc, &PasswordPolicy::default()));
        assert!(verify_password("correct horse battery staple", &phc).unwrap());
    }

    #[test]
    fn oauth_error_mapping() {
        assert_eq!(OAuthError::from(PasswordError::TooLong).code(), ErrorCode::InvalidRequest);
        assert_eq!(OAuthError::from(PasswordError::InvalidHash).code(), ErrorCode::ServerError);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn verify_never_panics(password in "\\PC{0,40}", phc in "\\PC{0,120}") {
            let _ = verify_password(&password, &phc);
            let _ = needs_rehash(&phc, &FAST);
        }

        #[test]
        fn phc_shaped_garbage_never_panics(m in any::<u32>(), t in any::<u32>(), p in any::<u32>(), tail in "[A-Za-z0-9+/$=,]{0,60}") {
            // Only parameters within the limits are ever computed, so this stays cheap.
            let phc = format!("$argon2id$v=19$m={m},t={t},p={p}${tail}");
            let _ = verify_password("pw", &phc);
            let _ = needs_rehash(&phc, &FAST);
        }

        #[test]
        fn round_trip(password in "\\PC{1,64}", other in "\\PC{1,64}", seed in any::<u64>()) {
            let phc = fast_hash(&password, seed);
            prop_assert!(verify_password(&password, &phc).unwrap());
            prop_assert_eq!(verify_password(&other, &phc).unwrap(), other == password);
        }
    }
}
