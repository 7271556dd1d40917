//! The device authorization grant (RFC 8628): code generation and the grant's state machine.
//!
//! A device asks for authorization and receives a *device code* (a 256-bit bearer secret it polls the token
//! endpoint with) and a short *user code* that a person types on another screen. The person approves or
//! denies; the device's next poll receives tokens exactly once.
//!
//! ```text
//!            approve                 poll (once)
//! Pending ───────────▶ Approved ───────────────▶ Consumed
//!    │
//!    └──── deny ─────▶ Denied
//! ```
//!
//! Every transition is a pure method taking `now`; storage persists the [`DeviceGrant`] and uses its
//! `revision` to refuse concurrent updates, so two polls racing on two replicas cannot both issue tokens.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::entropy::{uniform_index, Entropy};
use crate::error::{ErrorCode, OAuthError};
use crate::scope::Scope;
use crate::time::UnixTime;
use crate::token::{SecretToken, TokenHash, TokenKind};

/// The letters user codes are made of: 20 consonants. No vowels, so no words (offensive or otherwise) can
/// appear; no digits, so nothing to confuse with `O`/`I` (RFC 8628 §6.1).
pub const USER_CODE_ALPHABET: &str = "BCDFGHJKLMNPQRSTVWXZ";

/// Characters in a user code: 20⁸ ≈ 2^34.6 codes. Brute force is bounded by the code's short lifetime and
/// by rate limiting the verification page (RFC 8628 §5.1).
pub const USER_CODE_LEN: usize = 8;

/// Longest user-code input examined; anything longer is refused before any per-character work.
pub const MAX_USER_CODE_INPUT: usize = 64;

/// Seconds added to the polling interval on each `slow_down` (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP_SECS: u64 = 5;

/// Why a device-flow operation failed. Converts into the RFC 8628 §3.5 error codes via [`OAuthError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The user has not decided yet; poll again after the interval.
    #[error("the user has not yet completed the authorization")]
    AuthorizationPending,
    /// The device polled before the interval elapsed; the interval is now `interval_secs`.
    #[error("polling too fast; wait at least {interval_secs} seconds between requests")]
    SlowDown {
        /// The new minimum interval, already increased by [`SLOW_DOWN_STEP_SECS`].
        interval_secs: u64,
    },
    /// The user denied the authorization.
    #[error("the user denied the authorization")]
    AccessDenied,
    /// The device code has expired (whatever the user decided).
    #[error("the device code has expired")]
    ExpiredToken,
    /// Tokens were already issued for this device code.
    #[error("the device code has already been used")]
    AlreadyUsed,
    /// The user tried to approve or deny an authorization that is no longer pending.
    #[error("the authorization has already been decided")]
    AlreadyDecided,
    /// The text entered is not a well-formed user code.
    #[error("the user code is malformed")]
    InvalidUserCode,
}

impl From<DeviceError> for OAuthError {
    fn from(e: DeviceError) -> Self {
        match e {
            DeviceError::AuthorizationPending => OAuthError::new(ErrorCode::AuthorizationPending),
            DeviceError::SlowDown { .. } => OAuthError::with_description(ErrorCode::SlowDown, e.to_string()),
            DeviceError::AccessDenied => OAuthError::new(ErrorCode::AccessDenied),
            DeviceError::ExpiredToken => OAuthError::new(ErrorCode::ExpiredToken),
            DeviceError::AlreadyUsed | DeviceError::AlreadyDecided => {
                OAuthError::with_description(ErrorCode::InvalidGrant, e.to_string())
            }
            DeviceError::InvalidUserCode => OAuthError::invalid_request(e.to_string()),
        }
    }
}

/// A user code in normalised form: [`USER_CODE_LEN`] letters of [`USER_CODE_ALPHABET`], no separator.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserCode(String);

impl UserCode {
    /// Normalise what a person typed: case-insensitive, hyphens and whitespace ignored, anything else (or a
    /// wrong number of letters) refused. Input longer than [`MAX_USER_CODE_INPUT`] bytes is refused outright.
    pub fn normalise(input: &str) -> Result<UserCode, DeviceError> {
        if input.len() > MAX_USER_CODE_INPUT {
            return Err(DeviceError::InvalidUserCode);
        }
        let mut code = String::with_capacity(USER_CODE_LEN);
        for c in input.chars() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            let c = c.to_ascii_uppercase();
            if code.len() == USER_CODE_LEN || !USER_CODE_ALPHABET.contains(c) {
                return Err(DeviceError::InvalidUserCode);
            }
            code.push(c);
        }
        if code.len() != USER_CODE_LEN {
            return Err(DeviceError::InvalidUserCode);
        }
        Ok(UserCode(code))
    }

    /// The normalised form, e.g. `BCDFGHJK`: what storage keeps and looks up.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form shown to people, e.g. `BCDF-GHJK`.
    pub fn display(&self) -> String {
        let (a, b) = self.0.split_at(USER_CODE_LEN / 2);
        format!("{a}-{b}")
    }
}

impl FromStr for UserCode {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserCode::normalise(s)
    }
}

impl fmt::Display for UserCode {
    /// The form shown to people (`BCDF-GHJK`); use [`UserCode::as_str`] for storage.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

/// A fresh, uniformly random user code. Storage must still ensure it is unique among live grants (and
/// generate another on a collision).
pub fn generate_user_code(entropy: &mut impl Entropy) -> UserCode {
    let alphabet = USER_CODE_ALPHABET.as_bytes();
    let code = (0..USER_CODE_LEN).map(|_| char::from(alphabet[uniform_index(entropy, alphabet.len())])).collect();
    UserCode(code)
}

/// A fresh device code, issued at `issued_at`: 256 random bits with the `af_dc_` prefix and the time. Store
/// only its hash.
pub fn generate_device_code(issued_at: UnixTime, entropy: &mut impl Entropy) -> SecretToken {
    SecretToken::generate(TokenKind::DeviceCode, issued_at, entropy)
}

/// The server's device-flow settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevicePolicy {
    /// How long a device code lives (`expires_in`).
    pub lifetime: Duration,
    /// The initial minimum polling interval in seconds (`interval`). Zero disables `slow_down`.
    pub interval_secs: u64,
}

impl Default for DevicePolicy {
    /// Ten minutes, polling every 5 seconds (the RFC 8628 §3.2 default interval).
    fn default() -> Self {
        DevicePolicy { lifetime: Duration::from_secs(600), interval_secs: 5 }
    }
}

/// A successful poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    /// Issue tokens for `subject`; the grant is now consumed, so this happens once.
    Issue {
        /// The user who approved.
        subject: String,
    },
}

/// Where a device authorization stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Waiting for the user.
    Pending,
    /// The user approved; the next poll receives tokens.
    Approved {
        /// The user who approved.
        subject: String,
    },
    /// The user denied.
    Denied,
    /// Tokens were issued; the device code is spent.
    Consumed,
}

/// One device authorization, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceGrant {
    /// SHA-256 of the device code (the device code itself is never stored).
    pub device_code_hash: TokenHash,
    /// The user code in normalised form (upper-case letters, no separator), e.g. `BCDFGHJK`.
    pub user_code: String,
    /// The client that asked.
    pub client_id: String,
    /// The scope asked for, if any.
    pub scope: Option<Scope>,
    /// RFC 8707 resources asked for.
    pub resources: Vec<String>,
    /// Where it stands.
    pub status: DeviceStatus,
    /// The minimum polling interval in seconds; grows by 5 on each `slow_down`.
    pub interval_secs: u64,
    /// When the device last polled.
    pub last_polled_at: Option<UnixTime>,
    /// When it was created.
    pub created_at: UnixTime,
    /// When it expires.
    pub expires_at: UnixTime,
    /// Optimistic-concurrency revision: storage bumps it on every update and refuses stale writes.
    pub revision: u64,
}

impl DeviceGrant {
    /// A pending grant created at `now`, expiring after `policy.lifetime`, at revision 0.
    pub fn new(
        device_code_hash: TokenHash,
        user_code: &UserCode,
        client_id: impl Into<String>,
        scope: Option<Scope>,
        resources: Vec<String>,
        policy: &DevicePolicy,
        now: UnixTime,
    ) -> Self {
        DeviceGrant {
            device_code_hash,
            user_code: user_code.as_str().to_owned(),
            client_id: client_id.into(),
            scope,
            resources,
            status: DeviceStatus::Pending,
            interval_secs: policy.interval_secs,
            last_polled_at: None,
            created_at: now,
            expires_at: now + policy.lifetime,
            revision: 0,
        }
    }

    /// Whether the device code has expired at `now`.
    pub fn is_expired(&self, now: UnixTime) -> bool {
        now >= self.expires_at
    }

    /// Time left before expiry (zero once expired).
    pub fn expires_in(&self, now: UnixTime) -> Duration {
        now.saturating_until(self.expires_at)
    }

    /// A token-endpoint poll at `now`. The caller must already have checked that the polling client is
    /// [`DeviceGrant::client_id`] (RFC 8628 §3.4), and must persist the grant after every call, error or not:
    /// a poll always updates the interval bookkeeping.
    ///
    /// Checks, in order: expiry (`expired_token`, even if approved); polling faster than the interval since
    /// the previous poll (`slow_down`, and the interval grows by 5 s for good); then the status.
    ///
    /// A poll refused with `slow_down` still counts as the last poll. RFC 8628 §3.5 asks the client to wait
    /// the (increased) interval *between requests*, so the server measures from every request: a client that
    /// honours the interval after each response always recovers, while one that keeps hammering keeps being
    /// told to slow down. The first poll is never early: the interval is between polls.
    pub fn poll(&mut self, now: UnixTime) -> Result<PollOutcome, DeviceError> {
        if self.is_expired(now) {
            return Err(DeviceError::ExpiredToken);
        }
        let too_early = self.last_polled_at.is_some_and(|last| now < last + Duration::from_secs(self.interval_secs));
        self.last_polled_at = Some(now);
        if too_early {
            self.interval_secs = self.interval_secs.saturating_add(SLOW_DOWN_STEP_SECS);
            return Err(DeviceError::SlowDown { interval_secs: self.interval_secs });
        }
        match &mut self.status {
            DeviceStatus::Pending => Err(DeviceError::AuthorizationPending),
            DeviceStatus::Denied => Err(DeviceError::AccessDenied),
            DeviceStatus::Consumed => Err(DeviceError::AlreadyUsed),
            DeviceStatus::Approved { subject } => {
                let subject = std::mem::take(subject);
                self.status = DeviceStatus::Consumed;
                Ok(PollOutcome::Issue { subject })
            }
        }
    }

    /// The user approves at `now`. Only a pending, unexpired grant can be approved.
    pub fn approve(&mut self, subject: impl Into<String>, now: UnixTime) -> Result<(), DeviceError> {
        self.ensure_pending(now)?;
        self.status = DeviceStatus::Approved { subject: subject.into() };
        Ok(())
    }

    /// The user denies at `now`. Only a pending, unexpired grant can be denied.
    pub fn deny(&mut self, now: UnixTime) -> Result<(), DeviceError> {
        self.ensure_pending(now)?;
        self.status = DeviceStatus::Denied;
        Ok(())
    }

    fn ensure_pending(&self, now: UnixTime) -> Result<(), DeviceError> {
        if self.is_expired(now) {
            return Err(DeviceError::ExpiredToken);
        }
        match self.status {
            DeviceStatus::Pending => Ok(()),
            _ => Err(DeviceError::AlreadyDecided),
        }
    }
}

/// The device authorization response (RFC 8628 §3.2), as sent to the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAuthorizationResponse {
    /// The device code (a bearer secret).
    pub device_code: String,
    /// The user code, in display form (`BCDF-GHJK`).
    pub user_code: String,
    /// Where the user goes to enter the code.
    pub verification_uri: String,
    /// The verification URI with the user code filled in, for QR codes and links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri_complete: Option<String>,
    /// Seconds until the codes expire.
    pub expires_in: u64,
    /// Minimum seconds between polls.
    pub interval: u64,
}

impl DeviceAuthorizationResponse {
    /// The response for a freshly created `grant`. `verification_uri_complete` is `verification_uri` with a
    /// `user_code` query parameter added.
    pub fn new(
        device_code: &SecretToken,
        user_code: &UserCode,
        verification_uri: &url::Url,
        grant: &DeviceGrant,
        now: UnixTime,
    ) -> Self {
        let mut complete = verification_uri.clone();
        complete.query_pairs_mut().append_pair("user_code", &user_code.display());
        DeviceAuthorizationResponse {
            device_code: device_code.expose().to_owned(),
            user_code: user_code.display(),
            verification_uri: verification_uri.to_string(),
            verification_uri_complete: Some(complete.to_string()),
            expires_in: grant.expires_in(now).as_secs(),
            interval: grant.interval_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;
    use proptest::prelude::*;

    fn secs(s: u64) -> UnixTime {
        UnixTime::from_secs(s)
    }

    fn grant_at(now: UnixTime) -> DeviceGrant {
        let mut e = SeededEntropy::new(9);
        let code = generate_device_code(now, &mut e);
        let user = generate_user_code(&mut e);
        DeviceGrant::new(code.hash(), &user, "tv", None, vec![], &DevicePolicy::default(), now)
    }

    #[test]
    fn full_lifecycle() {
        let mut g = grant_at(secs(1000));
        assert_eq!(g.status, DeviceStatus::Pending);
        assert_eq!(g.expires_at, secs(1600));
        assert_eq!(g.poll(secs(1000)), Err(DeviceError::AuthorizationPending));
        assert_eq!(g.poll(secs(1005)), Err(DeviceError::AuthorizationPending));
        g.approve("alice", secs(1007)).unwrap();
        assert_eq!(g.poll(secs(1010)), Ok(PollOutcome::Issue { subject: "alice".into() }));
        assert_eq!(g.status, DeviceStatus::Consumed);
        assert_eq!(g.last_polled_at, Some(secs(1010)));
    }

    #[test]
    fn slow_down_grows_the_interval_for_good() {
        let mut g = grant_at(secs(0));
        assert_eq!(g.poll(secs(10)), Err(DeviceError::AuthorizationPending));
        assert_eq!(g.poll(secs(11)), Err(DeviceError::SlowDown { interval_secs: 10 }));
        assert_eq!(g.poll(secs(12)), Err(DeviceError::SlowDown { interval_secs: 15 }));
        assert_eq!(g.interval_secs, 15);
        // The slow_down poll at 12 counts: 14 s later is still too early, 15 s later is fine.
        assert_eq!(g.poll(secs(26)), Err(DeviceError::SlowDown { interval_secs: 20 }));
        assert_eq!(g.poll(secs(46)), Err(DeviceError::AuthorizationPending));
        assert_eq!(g.poll(secs(66)), Err(DeviceError::AuthorizationPending));
        assert_eq!(g.interval_secs, 20);
        // Exactly the interval is not too early.
        assert_eq!(UnixTime::from_millis(66_000), g.last_polled_at.unwrap());
        assert_eq!(g.poll(UnixTime::from_millis(85_999)), Err(DeviceError::SlowDown { interval_secs: 25 }));
    }

    #[test]
    fn tokens_are_issued_once() {
        let mut g = grant_at(secs(0));
        g.approve("bob", secs(1)).unwrap();
        assert!(matches!(g.poll(secs(2)), Ok(PollOutcome::Issue { .. })));
        assert_eq!(g.poll(secs(10)), Err(DeviceError::AlreadyUsed));
        assert_eq!(g.poll(secs(20)), Err(DeviceError::AlreadyUsed));
        assert_eq!(g.approve("bob", secs(21)), Err(DeviceError::AlreadyDecided));
    }

    #[test]
    fn expiry_beats_approval_and_slow_down() {
        let mut g = grant_at(secs(0));
        g.approve("carol", secs(100)).unwrap();
        assert_eq!(g.poll(secs(600)), Err(DeviceError::ExpiredToken));
        assert_eq!(g.poll(secs(600)), Err(DeviceError::ExpiredToken));
        assert_eq!(g.interval_secs, 5);
        assert!(matches!(g.status, DeviceStatus::Approved { .. }));
        let mut g = grant_at(secs(0));
        assert_eq!(g.approve("carol", secs(600)), Err(DeviceError::ExpiredToken));
        assert_eq!(g.deny(secs(601)), Err(DeviceError::ExpiredToken));
        assert_eq!(g.expires_in(secs(599)), Duration::from_secs(1));
        assert_eq!(g.expires_in(secs(700)), Duration::ZERO);
    }

    #[test]
    fn decisions_are_final() {
        let mut g = grant_at(secs(0));
        g.deny(secs(1)).unwrap();
        assert_eq!(g.approve("dave", secs(2)), Err(DeviceError::AlreadyDecided));
        assert_eq!(g.deny(secs(2)), Err(DeviceError::AlreadyDecided));
        assert_eq!(g.poll(secs(3)), Err(DeviceError::AccessDenied));
        assert_eq!(g.poll(secs(9)), Err(DeviceError::AccessDenied));
        let mut g = grant_at(secs(0));
        g.approve("erin", secs(1)).unwrap();
        assert_eq!(g.deny(secs(2)), Err(DeviceError::AlreadyDecided));
        assert_eq!(g.approve("mallory", secs(2)), Err(DeviceError::AlreadyDecided));
        assert_eq!(g.poll(secs(3)), Ok(PollOutcome::Issue { subject: "erin".into() }));
    }

    #[test]
    fn errors_map_to_rfc_8628_codes() {
        let code = |e: DeviceError| OAuthError::from(e).code().as_str();
        assert_eq!(code(DeviceError::AuthorizationPending), "authorization_pending");
        assert_eq!(code(DeviceError::SlowDown { interval_secs: 10 }), "slow_down");
        assert_eq!(code(DeviceError::AccessDenied), "access_denied");
        assert_eq!(code(DeviceError::ExpiredToken), "expired_token");
        assert_eq!(code(DeviceError::AlreadyUsed), "invalid_grant");
        assert_eq!(code(DeviceError::AlreadyDecided), "invalid_grant");
        assert_eq!(code(DeviceError::InvalidUserCode), "invalid_request");
        assert!(OAuthError::from(DeviceError::SlowDown { interval_secs: 10 }).description().contains("10 seconds"));
    }

    #[test]
    fn user_code_normalisation() {
        let code = UserCode::normalise("bcdf-ghjk").unwrap();
        assert_eq!(code.as_str(), "BCDFGHJK");
        assert_eq!(code.display(), "BCDF-GHJK");
        assert_eq!(code.to_string(), "BCDF-GHJK");
        assert_eq!(UserCode::normalise(" BCDF GHJK ").unwrap(), code);
        assert_eq!(UserCode::normalise("BCDFGHJK").unwrap(), code);
        assert_eq!(UserCode::normalise("b-c-d-f\tg h\nj k").unwrap(), code);
        assert_eq!("BcDf-GhJk".parse::<UserCode>().unwrap(), code);
        for bad in ["BCDF-GHJ", "BCDF-GHJKL", "", "--------", "BCDF-GHJA", "BCDF-GHJ0", "BCDF-GHJ1", "BCDF_GHJK"] {
            assert_eq!(UserCode::normalise(bad), Err(DeviceError::InvalidUserCode), "{bad:?}");
        }
        // Non-ASCII look-alikes are refused, not folded.
        assert!(UserCode::normalise("BCDF-GHJＫ").is_err());
        assert!(UserCode::normalise("ßCDF-GHJK").is_err());
        let hostile = format!("BCDF-GHJK{}", " ".repeat(10 * 1024));
        assert_eq!(UserCode::normalise(&hostile), Err(DeviceError::InvalidUserCode));
        assert_eq!(UserCode::normalise(&"B".repeat(10 * 1024)), Err(DeviceError::InvalidUserCode));
    }

    #[test]
    fn generated_codes() {
        let mut e = SeededEntropy::new(42);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let code = generate_user_code(&mut e);
            assert_eq!(code.as_str().len(), USER_CODE_LEN);
            assert!(code.as_str().chars().all(|c| USER_CODE_ALPHABET.contains(c)));
            seen.extend(code.as_str().chars());
        }
        assert_eq!(seen.len(), USER_CODE_ALPHABET.len(), "every letter appears");
        assert_eq!(USER_CODE_ALPHABET.len(), 20);
        assert!(!USER_CODE_ALPHABET.contains(['A', 'E', 'I', 'O', 'U', 'Y']));
        let dc = generate_device_code(secs(100), &mut e);
        assert_eq!(TokenKind::of(dc.expose()), Some(TokenKind::DeviceCode));
        assert_eq!(dc.expose().len(), "af_dc_".len() + 12 + 43);
    }

    #[test]
    fn authorization_response() {
        let mut e = SeededEntropy::new(5);
        let (dc, uc) = (generate_device_code(secs(100), &mut e), UserCode::normalise("WDJBMJHT").unwrap());
        let g = DeviceGrant::new(dc.hash(), &uc, "tv", None, vec![], &DevicePolicy::default(), secs(100));
        assert_eq!(g.user_code, "WDJBMJHT");
        let uri = url::Url::parse("https://as.example/device").unwrap();
        let r = DeviceAuthorizationResponse::new(&dc, &uc, &uri, &g, secs(100));
        assert_eq!(r.user_code, "WDJB-MJHT");
        assert_eq!(r.verification_uri_complete.as_deref(), Some("https://as.example/device?user_code=WDJB-MJHT"));
        assert_eq!((r.expires_in, r.interval), (600, 5));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["device_code"], dc.expose());
        assert_eq!(serde_json::from_value::<DeviceAuthorizationResponse>(json).unwrap(), r);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Poll,
        Approve,
        Deny,
    }

    proptest! {
        #[test]
        fn user_code_parsing_never_panics(input in "\\PC{0,80}") {
            if let Ok(code) = UserCode::normalise(&input) {
                prop_assert_eq!(code.as_str().len(), USER_CODE_LEN);
                prop_assert_eq!(UserCode::normalise(&code.display()).unwrap(), code);
            }
        }

        #[test]
        fn any_spelling_of_a_code_normalises_to_it(
            seed in any::<u64>(),
            seps in proptest::collection::vec("[ \\-\\t]{0,2}", 9),
        ) {
            let code = generate_user_code(&mut SeededEntropy::new(seed));
            let mut typed = String::new();
            for (i, c) in code.as_str().chars().enumerate() {
                typed.push_str(&seps[i]);
                typed.push(if i % 2 == 0 { c.to_ascii_lowercase() } else { c });
            }
            typed.push_str(&seps[8]);
            prop_assert_eq!(UserCode::normalise(&typed).unwrap(), code);
        }

        #[test]
        fn state_machine_invariants(ops in proptest::collection::vec((0u64..20_000, 0u8..3), 0..60)) {
            let mut g = grant_at(UnixTime::EPOCH);
            g.expires_at = UnixTime::from_secs(120);
            let (mut now, mut approved, mut issued) = (UnixTime::EPOCH, None::<String>, 0);
            for (step, op) in ops {
                now = now + Duration::from_millis(step);
                let op = [Op::Poll, Op::Approve, Op::Deny][op as usize].clone();
                let (before, interval) = (g.status.clone(), g.interval_secs);
                match op {
                    Op::Poll => match g.poll(now) {
                        Ok(PollOutcome::Issue { subject }) => {
                            prop_assert!(now < g.expires_at);
                            prop_assert_eq!(Some(subject), approved.clone());
                            issued += 1;
                        }
                        Err(DeviceError::SlowDown { interval_secs }) => {
                            prop_assert_eq!(interval_secs, interval + SLOW_DOWN_STEP_SECS);
                            prop_assert_eq!(&g.status, &before);
                        }
                        Err(DeviceError::ExpiredToken) => prop_assert!(now >= g.expires_at),
                        Err(DeviceError::AuthorizationPending) => prop_assert_eq!(&before, &DeviceStatus::Pending),
                        Err(DeviceError::AccessDenied) => prop_assert_eq!(&before, &DeviceStatus::Denied),
                        Err(DeviceError::AlreadyUsed) => prop_assert_eq!(&before, &DeviceStatus::Consumed),
                        Err(e) => prop_assert!(false, "unexpected {e:?}"),
                    },
                    Op::Approve => {
                        let r = g.approve(format!("user{step}"), now);
                        prop_assert_eq!(r.is_ok(), before == DeviceStatus::Pending && now < g.expires_at);
                        if r.is_ok() {
                            approved = Some(format!("user{step}"));
                        }
                    }
                    Op::Deny => {
                        let r = g.deny(now);
                        prop_assert_eq!(r.is_ok(), before == DeviceStatus::Pending && now < g.expires_at);
                    }
                }
                prop_assert!(g.interval_secs >= interval);
                prop_assert!(issued <= 1);
                if now >= g.expires_at {
                    prop_assert_eq!(g.poll(now), Err(DeviceError::ExpiredToken));
                }
            }
        }
    }
}
