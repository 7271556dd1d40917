//! # authflow-core
//!
//! The sans-IO heart of authflow: the OAuth 2.1 rules, with no sockets, no clocks, no async and no storage.
//! Time ([`time::UnixTime`]) and randomness ([`entropy::Entropy`]) are passed in, so every rule is a plain
//! function of its inputs and can be tested, fuzzed and simulated deterministically. The HTTP crates
//! (`authflow-server`, `authflow-resource`) and the storage crate wrap it.
//!
//! | module | what it decides |
//! |---|---|
//! | [`pkce`] | RFC 7636 verifier/challenge syntax and S256 verification |
//! | [`scope`] | RFC 6749 §3.3 scope syntax and set operations |
//! | [`validation`] | client ids, redirect URIs (and their matching), RFC 8707 resource indicators |
//! | [`error`] | the RFC error codes with their HTTP statuses |
//! | [`token`] | credential generation, hashing, constant-time comparison |
//! | [`ratelimit`] | the sliding-window rate limiter |
//! | [`device`] | the RFC 8628 device-flow state machine and code generators |
//! | [`metadata`] | RFC 8414 / RFC 9728 / OpenID discovery documents |
//! | [`jose`] | JWK, JWS, JWT for ES256/EdDSA: RFC 9068 access tokens, RFC 7523 client assertions |
//! | [`password`] | argon2id password hashing and verification |
//! | [`ssrf`] | outbound-fetch policy: host parsing in every resolver spelling, address classes, allow-lists |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod device;
pub mod entropy;
pub mod error;
pub mod friction;
pub mod grant;
pub mod jose;
pub mod lru;
pub mod metadata;
pub mod password;
pub mod pkce;
pub mod ratelimit;
pub mod scope;
pub mod ssrf;
pub mod time;
pub mod token;
pub mod validation;

pub use entropy::Entropy;
pub use error::{ErrorCode, OAuthError};
pub use grant::{ClientAuthMethod, GrantType};
pub use scope::Scope;
pub use time::UnixTime;
pub use token::{SecretToken, TokenHash, TokenKind};
