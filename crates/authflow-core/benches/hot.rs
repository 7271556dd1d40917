//! Per-call cost of the functions on every request's path (`cargo bench -p authflow-core --bench hot`):
//! PKCE S256 verification, credential hashing and generation, RFC 9068 JWT signing and verification, and a
//! rate-limit check on a warm key.

use std::hint::black_box;
use std::time::Duration;

use authflow_core::entropy::SeededEntropy;
use authflow_core::jose::{self, AccessTokenClaims, Algorithm, Audience, JwkSet, PrivateKey, Validation};
use authflow_core::pkce::{CodeVerifier, PkceChallenge};
use authflow_core::ratelimit::{MemoryRateLimiter, RateLimit};
use authflow_core::{Scope, SecretToken, TokenHash, TokenKind, UnixTime};
use criterion::{criterion_group, criterion_main, Criterion};

const ISSUER: &str = "https://auth.example.com";
const RESOURCE: &str = "https://mcp.example.com/mcp";

fn pkce(c: &mut Criterion) {
    let mut group = c.benchmark_group("pkce");
    let verifier = CodeVerifier::generate(&mut SeededEntropy::new(1));
    let challenge = PkceChallenge::s256(&verifier);
    // What the token endpoint does with the raw `code_verifier` parameter: parse, SHA-256, base64url,
    // constant-time compare.
    group.bench_function("s256_verify_param", |b| {
        b.iter(|| black_box(&challenge).verify_param(Some(black_box(verifier.expose()))))
    });
    group.finish();
}

fn tokens(c: &mut Criterion) {
    let mut group = c.benchmark_group("token");
    let mut entropy = SeededEntropy::new(2);
    let at = UnixTime::from_secs(1_700_000_000);
    let presented = SecretToken::generate(TokenKind::AccessToken, at, &mut entropy);
    // Every introspection, refresh and code exchange hashes the presented credential once (SHA-256, and the
    // issue time it carries read into the hash's first bytes).
    group.bench_function("hash_presented", |b| b.iter(|| TokenHash::of(black_box(presented.expose()))));
    // Client authentication: hash the presented secret and compare in constant time.
    let secret = SecretToken::generate(TokenKind::ClientSecret, at, &mut entropy);
    let stored = secret.hash();
    group.bench_function("secret_matches", |b| b.iter(|| black_box(&stored).matches(black_box(secret.expose()))));
    // Encoding only: the server draws the 32 bytes from the OS (a `getrandom` syscall on top of this).
    group.bench_function("generate_seeded", |b| {
        b.iter(|| SecretToken::generate(TokenKind::AccessToken, black_box(at), black_box(&mut entropy)))
    });
    group.finish();
}

fn jwt(c: &mut Criterion) {
    let mut group = c.benchmark_group("jwt_access_token");
    let now = UnixTime::from_secs(1_800_000_000);
    let scope = Scope::parse("notes:read notes:write").expect("a valid scope");
    for alg in [Algorithm::ES256, Algorithm::EdDSA] {
        let mut entropy = SeededEntropy::new(3);
        let key = PrivateKey::generate(alg, &mut entropy, Some("bench-key".into()));
        let keys = JwkSet::new(vec![key.public_jwk()]);
        let claims = AccessTokenClaims::new(
            ISSUER,
            "user-1",
            Audience::one(RESOURCE),
            "client-1",
            now,
            Duration::from_secs(3600),
            &mut entropy,
        )
        .with_scope(&scope);
        let token = claims.sign(&key).expect("signs");
        let validation = Validation::access_token(now, ISSUER, RESOURCE);
        assert!(jose::decode(&token, &keys, &validation).is_ok(), "the benchmark token verifies");
        // Signing includes the claims' JSON serialisation and the base64url encodings.
        group.bench_function(format!("sign_{alg:?}"), |b| b.iter(|| black_box(&claims).sign(black_box(&key))));
        // Verification: split, decode, key lookup, signature, then the RFC 9068 claim checks.
        group.bench_function(format!("verify_{alg:?}"), |b| {
            b.iter(|| jose::decode(black_box(&token), black_box(&keys), black_box(&validation)))
        });
    }
    group.finish();
}

fn rate_limit(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_limit");
    let limiter = MemoryRateLimiter::new();
    // A limit never reached: the common case, a caller well within its budget.
    let limit = RateLimit::new(u32::MAX, Duration::from_secs(60)).expect("a valid rate limit");
    let mut now = UnixTime::from_secs(1_800_000_000);
    for _ in 0..100 {
        now = now + Duration::from_millis(1);
        limiter.check("introspect:127.0.0.1", &limit, now);
    }
    group.bench_function("memory_warm_key", |b| {
        b.iter(|| {
            now = now + Duration::from_micros(10);
            limiter.check(black_box("introspect:127.0.0.1"), &limit, now)
        })
    });
    // Ten thousand other keys in the limiter: hashing and shard locking stay the same, the map is larger.
    for i in 0..10_000 {
        limiter.check(&format!("introspect:10.0.{}.{}", i / 256, i % 256), &limit, now);
    }
    group.bench_function("memory_warm_key_10k_keys", |b| {
        b.iter(|| {
            now = now + Duration::from_micros(10);
            limiter.check(black_box("introspect:127.0.0.1"), &limit, now)
        })
    });
    group.finish();
}

criterion_group!(benches, pkce, tokens, jwt, rate_limit);
criterion_main!(benches);
