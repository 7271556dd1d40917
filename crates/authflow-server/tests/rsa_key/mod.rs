//! A fixed 2048-bit RSA key for the tests where someone else signs with RSA — an upstream OpenID Connect
//! provider (RS256/PS256 ID tokens), a `private_key_jwt` client (RS256 assertions) — since authflow itself
//! never signs with RSA. Generated once with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`;
//! it is the key of authflow-core's RSA test vectors. **A test key: its private half is public.**
//!
//! Signing uses ring (already a dependency of authflow-server), from the PKCS#8 document.

#![allow(dead_code)]

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::signature::{RsaEncoding, RsaKeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256};
use serde_json::{json, Value};

/// The `kid` the tokens signed here carry, and [`public_jwk`] has.
pub const KID: &str = "rsa-2048";

/// The modulus, base64url; the exponent is 65537 (`AQAB`).
pub const N: &str = "vGeOxOnrOjNKQ4gW9Az6QGnELb_sLXJtkciZFcS91eU49W_fsU4HQs6V97egH67F2g2hTU0mbCH5pzM-5tGnKmfrPJ7YAhIPn\
                     oHaaqB7yAHcUizm8ZUJaMXSN4QRQqYTpdNgaDKhci8KGb3oqXCBa0bAapWpdbhFWfUbxzW-l3u4-eDYCZunW6pu6LmxI9i81P\
                     qvQ1TLAwLPs_23U3hrawNVmGs_pOm47cBuJGqZwsFW-oO4w9tX7TpHMgiEuqn0xCmgqZRCVshifGa2KawL45QyeaakxT0Hb4X\
                     p3mfbS3rURag9d4xquY4c4NEvz0U6GqfY7qpoRiA_EPib-ehKbw";

/// The private key: PKCS#8 (`openssl pkcs8 -topk8 -nocrypt -outform DER`), standard base64.
const PKCS8: &str = "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC8Z47E6es6M0pDiBb0DPpAacQtv+wtcm2RyJkVxL3V5Tj1b\
                     9+xTgdCzpX3t6AfrsXaDaFNTSZsIfmnMz7m0acqZ+s8ntgCEg+egdpqoHvIAdxSLObxlQloxdI3hBFCphOl02BoMqFyLwoZve\
                     ipcIFrRsBqlal1uEVZ9RvHNb6Xe7j54NgJm6dbqm7oubEj2LzU+q9DVMsDAs+z/bdTeGtrA1WYaz+k6bjtwG4kapnCwVb6g7j\
                     D21ftOkcyCIS6qfTEKaCplEJWyGJ8ZrYprAvjlDJ5pqTFPQdvheneZ9tLetRFqD13jGq5jhzg0S/PRToap9juqmhGID8Q+Jv5\
                     6EpvAgMBAAECggEALsYtAUEr15atPMfYHv3r0TsQ6+TGj1/lyPg63VcrZCOU+QYtzHiZP+JHBCmP9N2wnBqfLbBWNilXMEX+O\
                     1LYhCQpmDK9YQI343vMjIVMRdMEblhce6SrIdpe/s5odJoDrbslJ6lOQKliAhMOZKacUtRNaAjA+gtmGFfMbjAvIa82FEwqv/\
                     DFvPlZ8PvWtG/k+uD29Xs5b564IPLSNwKP/r6qAtgcdbZ00A/0fWVXqz4Cx4vPaKUvt1Xg5rDkz+Fl0wymsn/FrMcg15hNtwz\
                     F0TRU1AHytU2PjnsT3m+U+YEb635bpXjz6IlkV6qZ9A27sssdqAWAITTSi1ktM4/BpQKBgQDkI4zkTTDsD9EqXLfMQWJOfG+N\
                     phBdOXBnkYDNNK46zH7ttxwm2kXJsmHWRC91kahgXB4y2Wb2TiWFmpwvLx+ru/3Rm/7Vna9e/p36WS62MyU8WNm2qOTKJpwwl\
                     Ctd/y/AsmZy2BhG2ErYN66CZsu67ZZ0TsTJxUgv2s2/lltxlQKBgQDTacRxCjSYk0maGmVKZ2XJKIAmyqo0nMxh9NwycboqLd\
                     39uwa3NksvvbKmvS+pk05pUZTwLxe523l7RnGKxNUMzZH7Q2L2iU0JRSOx43kMnvFZOzKjnz1MEPX1lx8JbHPGDV06uO7uHfW\
                     1mTCfqXoHHAfsB3qwQ4N8OM6orOMS8wKBgQCb46bsgcqCI7S7i6uUCMGR+/mGAwl/ijZCruwiTHMZfo7lBJBaBCBX2Gp+LQ14\
                     +tThM1D3UhLHD1MYXjOHEl5DzSt9RWj2ss8YzEdKwBHpMj2pZNUvuWzMrWFg2H5htnP86mqS4xKDplxOLo4yUOe5jYuXYhOaB\
                     BJ1kL+ywJ0vmQKBgQDRAbSiqJs86AgQ4N2YxEYdq/ud3iiNISLyCNiUylhpELVx/i9ye6uzRBBVxZ1UQXx4pJ3hIj2Lkg40sH\
                     zZ2yRhpu4WgRVadH0DmCXk3OU0dAJY3CyBFJHOHMp9BO07LMv8VgQAZQpZwKbE5PDsN+mbE7xFPVOu5OAdtC+jFGDdvwKBgAP\
                     oK6gXg2mc1pOM30CsQ3HHaHT9R6RXxLAVu+KhnOoKRvAJryqDoiPiAPlsc9355C8fMUQAUGASH+nnvFIBceeP4mdm7uxyo7Mj\
                     tr+XanQhopce9yFZgm4cu6Y06eDNgnjWKR/iL1IUKguM1mVEJ2j9vnw4vFRG+ShtMqWSGe0o";

/// The public JWK, `kid` [`KID`], with `extra` members (`alg`, `use`, …) added.
pub fn public_jwk(extra: Value) -> Value {
    let mut jwk = json!({"kty": "RSA", "kid": KID, "n": N, "e": "AQAB"});
    if let Value::Object(extra) = extra {
        jwk.as_object_mut().unwrap().extend(extra);
    }
    jwk
}

/// A compact JWS over `claims` with header `{"alg": alg, "kid": KID}` plus `extra_header`; `alg` is RS256 or
/// PS256 (PS256 signatures are randomised, with a 32-byte salt).
pub fn sign(alg: &str, extra_header: Value, claims: &Value) -> String {
    let padding: &'static dyn RsaEncoding = match alg {
        "RS256" => &RSA_PKCS1_SHA256,
        "PS256" => &RSA_PSS_SHA256,
        other => panic!("not an RSA algorithm: {other}"),
    };
    let mut header = json!({"alg": alg, "kid": KID});
    if let Value::Object(extra) = extra_header {
        header.as_object_mut().unwrap().extend(extra);
    }
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let key = RsaKeyPair::from_pkcs8(&STANDARD.decode(PKCS8).unwrap()).expect("the test key is PKCS#8 RSA");
    let mut signature = vec![0u8; key.public().modulus_len()];
    key.sign(padding, &ring::rand::SystemRandom::new(), input.as_bytes(), &mut signature).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}
