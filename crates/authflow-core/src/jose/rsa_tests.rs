//! RS256 and PS256 verification against fixed vectors: RSA keys and tokens generated offline with OpenSSL
//! (`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048` and `:1024`, then `openssl dgst -sha256
//! -sign`, with `-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32` for PS256), so the tests need no
//! RSA signing code. Only the public halves are here.

use proptest::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::assertion::{validate_client_assertion, CLIENT_ASSERTION_ALGORITHMS};
use super::jwk::{Jwk, JwkSet, PrivateKey};
use super::jws::{sign, verify, verify_raw};
use super::jwt::{decode, Validation};
use super::{b64_decode, b64_encode, Algorithm, JoseError, RSA_MAX_BITS};
use crate::entropy::SeededEntropy;
use crate::time::UnixTime;

/// The 2048-bit test key's modulus (`kid` `rsa-2048` in the tokens); its exponent is 65537 (`AQAB`).
const N_2048: &str = "vGeOxOnrOjNKQ4gW9Az6QGnELb_sLXJtkciZFcS91eU49W_fsU4HQs6V97egH67F2g2hTU0mbCH5pzM-5tGnKmfrPJ7YAhIP\
                      noHaaqB7yAHcUizm8ZUJaMXSN4QRQqYTpdNgaDKhci8KGb3oqXCBa0bAapWpdbhFWfUbxzW-l3u4-eDYCZunW6pu6LmxI9i8\
                      1PqvQ1TLAwLPs_23U3hrawNVmGs_pOm47cBuJGqZwsFW-oO4w9tX7TpHMgiEuqn0xCmgqZRCVshifGa2KawL45QyeaakxT0H\
                      b4Xp3mfbS3rURag9d4xquY4c4NEvz0U6GqfY7qpoRiA_EPib-ehKbw";
/// Another 2048-bit key.
const N_2048_OTHER: &str = "4d3c8csyuyRG3hycBy31o73gkR687L5BG6XSZMBOE2YnT1d4ryGyclAnyoSRz4RUw3a4eLox7LhRKf0ODPe0TgizzP\
                            8-O4S5B5xB7bWsU-aiAOu0YPSXnUUeCIc2MwPrTFluIyzWKbN-LBzNIew9C0y0YhJmGN4E0sO2P0Nyql3KSnb8Ufl4\
                            JDmtT0X4ndy7oZkCYwBSiBMLByVjgsziBHYjHrYzuUCWpCZOazLTIOuBYqibO2snoE4-cIjPHoHR0TYn64FQz5J-Gd\
                            VRwzarXY198w5TVJK_slpL-wFeQE2Fp7ir_P4wdiy8YCvbLSii_rb2O5lMSTErPZDd1iLMrQ";
/// A 1024-bit key (`kid` `rsa-1024`).
const N_1024: &str = "qa0q2ogBUkhtWaBe8FfN6n4crc8Bgn9Y0TXY9gWmuCwxVqjM9LV1BR1DeNxtMDX32IMah1TQ3MvUIy3QV4v2iBnEyJUvemYM\
                      ru_uxLlv8hdKrcndN-fgTsetMMFrC4cljw-U26R61PGcmZy82cAGeDFsJV2BNmErO-TydG6_GLM";
const E: &str = "AQAB";

/// `{"alg":"RS256","kid":"rsa-2048","typ":"JWT"}` over [`claims`], signed by the 2048-bit key.
const RS256_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYS0yMDQ4IiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL2lkcC5leGF\
                           tcGxlIiwic3ViIjoiYWxpY2UiLCJhdWQiOiJjbGllbnQtMSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAwMz\
                           AwfQ.P9uW0VfhkYXkLtnj0iMQhGhcJlF5cA1w5Pc9AnlDTdd0CLjRfzgkJUIrH3YHcPRiLA1JeD8vSJX0ZtHRsQkWT6\
                           N9mKBqLHIpqeWlXhxmTfF0ZCoYSIErmRtfUKiMB51sq1RWmKetSlPNcjvpG7xmOXB0-WKp-iynmsdfk09MyY0ndsdEB\
                           Diql-oTJbu-cidloT4N3TeO7V7pfscvjRHY4SYAax_sVjYxtPbx-tWddUZHKmwMOOEUL3BiYkiTBC8ThWASd48_naDZ\
                           aC4I8fZAkOUk1S8RquB0GbuGp2xLAqCST5FHzIM3SHT9JNp_nbuXDKs31McmJ0E2rr1YmtGOTg";
/// The same claims, `{"alg":"PS256","kid":"rsa-2048","typ":"JWT"}`.
const PS256_TOKEN: &str = "eyJhbGciOiJQUzI1NiIsImtpZCI6InJzYS0yMDQ4IiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL2lkcC5leGF\
                           tcGxlIiwic3ViIjoiYWxpY2UiLCJhdWQiOiJjbGllbnQtMSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAwMz\
                           AwfQ.mWO5A6fdVc8GlJSkWYkkeUMhHFu2A53zIVQhMGqX0yW6xAMrSGI9GXd4QlAflgzSq_03AcvMj787H6HEa5qL-u\
                           l37T2Kf5qoKZA4lzHP2VurRNTSJz3WpSQhANSkRasmYZmEHoqBVU29WwXGPx84giuecvVUx8q-mkz4yoblDmnu0xcR_\
                           -0WxgtBLL_Yw87vS7WizO8ZRWF_NAdmBdCaVoYeECYcwbS4fEgW0bEiC9dAM8FWlSVGi-uNLyIMtve8buzRIPFjRgCV\
                           00DC05r7EuOg9uwV8dBBO243_TMfgKFKQlv1LXDjxEO2Boi_W6EEDSvJTd8x8t_vJvCSXmMP9A";
/// The same claims, `{"alg":"RS256","typ":"JWT"}`: no `kid`.
const RS256_NO_KID: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlIiwic3ViIjoiYWxpY\
                            2UiLCJhdWQiOiJjbGllbnQtMSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAwMzAwfQ.sMtVLuuPKWfXjMDM\
                            FBn1HEVQJdwmpCANRPCdA2lCD5BKIe6UYX3rFVDo-ShEHZa5Iwvhl6UhiwGsXnaZcWrIMLQYmln-gVM5b3oYmfxxB1\
                            ko8DWonr3YhhcnAonlKV3lKnfTZ-cQuEnm9lYGOMWFNXkUsb1j03g6lxoNcqvoaB3woW6V-9oeWyIdW5jzTnvbSJqf\
                            NFEQU1k68wZP7ga38-_9miEz8BZdepHTNJ9jSQxRAY5a3L9m3By-r2vfNJVryJ73Xo05TpRty4GZW2-CdfFw3YZQYk\
                            GRiwuyYqjWV93OreIcjH8xrWP_HKU03gO891PMblGfOFn6Xu510gLCCg";
/// The same claims, `{"alg":"RS256","kid":"rsa-1024","typ":"JWT"}`, correctly signed by the 1024-bit key.
const RS256_BY_1024: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYS0xMDI0IiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL2lkcC5le\
                             GFtcGxlIiwic3ViIjoiYWxpY2UiLCJhdWQiOiJjbGllbnQtMSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMD\
                             AwMzAwfQ.MUk1o8Gu6i_tjnzScEikEiUhMoQsdzit86argnwziypsbC7LxIy0nNCV1w38OkbTVa35hv1Mceb4vToY\
                             mqWKr5QTmZ-DwJtwGQ4zU-Vdt-CSGrdYPYSeMf8nbSKXZc9Ku6kZurnnC4tAvdPBAjXc9_cFXJ_c6AFnZeSNxA74a\
                             I8";
/// A client assertion (RFC 7523) for `https://client.example/metadata.json` at `https://as.example/token`,
/// issued at [`NOW`], `{"alg":"RS256","kid":"rsa-2048"}`.
const ASSERTION_RS256: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYS0yMDQ4In0.eyJpc3MiOiJodHRwczovL2NsaWVudC5leGFtcGxlL21\
                               ldGFkYXRhLmpzb24iLCJzdWIiOiJodHRwczovL2NsaWVudC5leGFtcGxlL21ldGFkYXRhLmpzb24iLCJhdWQiOi\
                               JodHRwczovL2FzLmV4YW1wbGUvdG9rZW4iLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDEyMCwianRpI\
                               joicnNhLWFzc2VydGlvbi0xIn0.I32s4VdWDjgw0Tqu55F87By808ojNvIKfSACsVArkPLbKYqku0w1zHRsDafM\
                               YoPRBromym-3y-AZLC2Ie0peOglWsmBmYF65_Z51TnL6qyYkjBGyQ5bJ0LRZVe52p1iHJcx8hR79izqS5nfw5M8\
                               0o-HGS_jfIdQj7nzOX1PPp992mbGX6_FQa8nGeFx2FwbBXvLexgTYyldSLW0ynJ9Y-_CSkVx2OaBUXFBZWhlPqN\
                               3QuOl7mbEG3Xpb3KyzMu7TNJyCIk4TZNqP0r3ZE07m2GAfPFE3ucjTCZRR8Zp1V8McH9F2V7tfixJlFg5BgKQ4t\
                               LFxHWlRO0j25C8fnycj3Q";
/// The same assertion, `{"alg":"PS256","kid":"rsa-2048"}`.
const ASSERTION_PS256: &str = "eyJhbGciOiJQUzI1NiIsImtpZCI6InJzYS0yMDQ4In0.eyJpc3MiOiJodHRwczovL2NsaWVudC5leGFtcGxlL21\
                               ldGFkYXRhLmpzb24iLCJzdWIiOiJodHRwczovL2NsaWVudC5leGFtcGxlL21ldGFkYXRhLmpzb24iLCJhdWQiOi\
                               JodHRwczovL2FzLmV4YW1wbGUvdG9rZW4iLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDEyMCwianRpI\
                               joicnNhLWFzc2VydGlvbi0xIn0.Y9GtEh_bu-7FPL7BIB1nJVgnhsVt-RQj-dzWWJsaD4ydB-nI_18OCtzCNA5s\
                               LOSs31XEMTdoViviIdXgtVo6b9fLmsX5hLji7l0Pz8Wt2N5HBgr4qGfJMHtsCMpevnfR0IL87Zt8s4zlhBLXHSO\
                               5YYWZX51CIZ7eSzdso6tL_TwarI1IFV3DHor6Q5hm7iAN0JRFv4XupKaDjeTN6mqlVP9JxzFSyVnaqdfFk-fNeU\
                               9O3t2-mX2KJdzWoecbJG7JcVeFNTJ7f4X7Sdxj_g2EExdj1n2nferUSBmV5jvaUJ9TugFZ1Z2kU_OcqVQ6yrS-f\
                               YHTpWMZfZmvlVZEFaIqSQ";

/// RFC 7638 §3.1: the RFC 7517 Appendix A.1 RSA key and its thumbprint.
const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebW\
                         KRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMi\
                         cAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3X\
                         PksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
const RFC7638_THUMBPRINT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

const NOW: u64 = 1_700_000_000;
const RS_ONLY: &[Algorithm] = &[Algorithm::RS256];
const RSA_BOTH: &[Algorithm] = &[Algorithm::RS256, Algorithm::PS256];

fn claims() -> serde_json::Value {
    json!({"iss": "https://idp.example", "sub": "alice", "aud": "client-1", "iat": NOW, "exp": NOW + 300})
}

/// An RSA JWK with `n`, `e` and `extra` members (JSON text without braces, starting with a comma).
fn rsa(n: &str, e: &str, extra: &str) -> Result<Jwk, JoseError> {
    Jwk::parse(&format!(r#"{{"kty":"RSA","n":"{n}","e":"{e}"{extra}}}"#))
}

fn key(extra: &str) -> Jwk {
    rsa(N_2048, E, extra).unwrap()
}

fn set(keys: Vec<Jwk>) -> JwkSet {
    JwkSet::new(keys)
}

/// The token with its signature replaced.
fn with_signature(token: &str, signature: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').unwrap();
    format!("{input}.{}", b64_encode(signature))
}

fn signature(token: &str) -> Vec<u8> {
    b64_decode(token.rsplit_once('.').unwrap().1).unwrap()
}

#[test]
fn rs256_verifies_with_a_2048_bit_key() {
    let keys = set(vec![key(r#","kid":"rsa-2048""#)]);
    let v = verify(RS256_TOKEN, &keys, RS_ONLY).unwrap();
    assert_eq!(v.claims, claims());
    assert_eq!(
        (v.header.alg, v.header.kid.as_deref(), v.header.typ.as_deref()),
        (Algorithm::RS256, Some("rsa-2048"), Some("JWT"))
    );
    // As an ID token, with every claim checked.
    let validation = Validation::new(UnixTime::from_secs(NOW)).issuer("https://idp.example").audience("client-1");
    assert_eq!(decode(RS256_TOKEN, &keys, &validation).unwrap().claim("sub"), Some(&json!("alice")));
    // A key pinned with `alg` and `use` verifies too; so does one among other keys of other types.
    assert!(verify(RS256_TOKEN, &set(vec![key(r#","kid":"rsa-2048","alg":"RS256","use":"sig""#)]), RS_ONLY).is_ok());
    let ec = PrivateKey::generate(Algorithm::ES256, &mut SeededEntropy::new(1), Some("ec".into())).public_jwk();
    let mixed = set(vec![ec, rsa(N_2048_OTHER, E, r#","kid":"other""#).unwrap(), key(r#","kid":"rsa-2048""#)]);
    assert!(verify(RS256_TOKEN, &mixed, &Algorithm::ALL).is_ok());
}

#[test]
fn ps256_verifies_with_a_2048_bit_key() {
    let keys = set(vec![key(r#","kid":"rsa-2048""#)]);
    let v = verify(PS256_TOKEN, &keys, &[Algorithm::PS256]).unwrap();
    assert_eq!((v.header.alg, v.claims), (Algorithm::PS256, claims()));
    // One RSA key without `alg` serves both RSA algorithms.
    assert!(verify(RS256_TOKEN, &keys, RSA_BOTH).is_ok());
    assert!(verify(PS256_TOKEN, &keys, RSA_BOTH).is_ok());
    assert!(verify(PS256_TOKEN, &set(vec![key(r#","kid":"rsa-2048","alg":"PS256""#)]), RSA_BOTH).is_ok());
}

#[test]
fn without_kid_every_rsa_key_is_tried() {
    let other = rsa(N_2048_OTHER, E, "").unwrap();
    let ec = PrivateKey::generate(Algorithm::ES256, &mut SeededEntropy::new(2), None).public_jwk();
    assert!(verify(RS256_NO_KID, &set(vec![ec.clone(), other.clone(), key("")]), RS_ONLY).is_ok());
    assert_eq!(verify(RS256_NO_KID, &set(vec![ec.clone(), other]), RS_ONLY), Err(JoseError::BadSignature));
    assert_eq!(verify(RS256_NO_KID, &set(vec![ec]), RS_ONLY), Err(JoseError::UnknownKey));
}

#[test]
fn tampered_rsa_tokens_fail() {
    let keys = set(vec![key(r#","kid":"rsa-2048""#)]);
    for token in [RS256_TOKEN, PS256_TOKEN] {
        // One bit of the signature.
        let mut sig = signature(token);
        sig[100] ^= 1;
        assert_eq!(verify(&with_signature(token, &sig), &keys, RSA_BOTH), Err(JoseError::BadSignature));
        // Another payload under the same signature.
        let parts: Vec<&str> = token.split('.').collect();
        let evil = b64_encode(br#"{"iss":"https://idp.example","sub":"admin","aud":"client-1","exp":1700000300}"#);
        let swapped = format!("{}.{evil}.{}", parts[0], parts[2]);
        assert_eq!(verify(&swapped, &keys, RSA_BOTH), Err(JoseError::BadSignature));
        // Truncated, extended, or the length of an ES256 signature.
        let sig = signature(token);
        for bad in [&sig[..255], &[&sig[..], &[0]].concat()[..], &sig[..64], &[]] {
            assert_eq!(verify(&with_signature(token, bad), &keys, RSA_BOTH), Err(JoseError::BadSignature));
        }
        // All zeros and all ones (the latter is not below the modulus).
        for fill in [0u8, 0xff] {
            assert_eq!(verify(&with_signature(token, &[fill; 256]), &keys, RSA_BOTH), Err(JoseError::BadSignature));
        }
        // The right kid on another key's material.
        let impostor = set(vec![rsa(N_2048_OTHER, E, r#","kid":"rsa-2048""#).unwrap()]);
        assert_eq!(verify(token, &impostor, RSA_BOTH), Err(JoseError::BadSignature));
    }
    // An RS256 signature under a PS256 header (and the reverse): the header is signed, and the paddings differ.
    let rs_sig = signature(RS256_TOKEN);
    assert_eq!(verify(&with_signature(PS256_TOKEN, &rs_sig), &keys, RSA_BOTH), Err(JoseError::BadSignature));
    let ps_sig = signature(PS256_TOKEN);
    assert_eq!(verify(&with_signature(RS256_TOKEN, &ps_sig), &keys, RSA_BOTH), Err(JoseError::BadSignature));
}

#[test]
fn rsa_keys_below_2048_bits_are_refused() {
    assert_eq!(rsa(N_1024, E, ""), Err(JoseError::InvalidKey("the RSA modulus is shorter than 2048 bits")));
    // In a set the weak key is dropped, so its (correctly signed) token finds no key.
    let keys = JwkSet::parse(&format!(r#"{{"keys":[{{"kty":"RSA","kid":"rsa-1024","n":"{N_1024}","e":"{E}"}}]}}"#));
    let keys = keys.unwrap();
    assert!(keys.is_empty());
    assert_eq!(
        verify(RS256_BY_1024, &keys, RS_ONLY),
        Err(JoseError::BadSignature),
        "128 bytes is no RSA-2048 signature"
    );
    // 2047 bits: 256 bytes, but the top bit clear (ring alone would round it up to 2048 and accept it).
    let mut n = b64_decode(N_2048).unwrap();
    n[0] = 0x7f;
    assert_eq!(rsa(&b64_encode(&n), E, ""), Err(JoseError::InvalidKey("the RSA modulus is shorter than 2048 bits")));
    n[0] = 0x80;
    assert_eq!(rsa(&b64_encode(&n), E, "").unwrap().rsa_modulus_bits(), Some(2048));
    // Above 8192 bits, and far above.
    let mut huge = vec![0xc5u8; RSA_MAX_BITS / 8 + 1];
    huge[0] = 1;
    assert_eq!(rsa(&b64_encode(&huge), E, ""), Err(JoseError::InvalidKey("the RSA modulus is longer than 8192 bits")));
    assert!(matches!(rsa(&"A".repeat(10_000), E, ""), Err(JoseError::InvalidKey(_))));
    let mut max = vec![0xffu8; RSA_MAX_BITS / 8];
    max[0] = 0xc0;
    assert_eq!(rsa(&b64_encode(&max), E, "").unwrap().rsa_modulus_bits(), Some(RSA_MAX_BITS));
    // An even modulus is no RSA modulus.
    let mut even = b64_decode(N_2048).unwrap();
    *even.last_mut().unwrap() &= 0xfe;
    assert_eq!(rsa(&b64_encode(&even), E, ""), Err(JoseError::InvalidKey("the RSA modulus is even")));
}

#[test]
fn rsa_members_are_checked() {
    let bad_e = Err(JoseError::InvalidKey("the RSA exponent is not an odd number from 3 to 2^33 - 1"));
    // e = 1, 2, 65536, 0, empty, and 2^33 + 1.
    for e in ["AQ", "Ag", "AQAA", "AA", "", "AgAAAAE"] {
        assert_eq!(rsa(N_2048, e, ""), bad_e, "{e:?}");
    }
    // e = 3 and 2^33 - 1 are the bounds.
    assert!(rsa(N_2048, "Aw", "").is_ok());
    assert!(rsa(N_2048, "Af____8", "").is_ok());
    // Leading zero bytes are tolerated and dropped: the same key, the same thumbprint.
    let padded_n = b64_encode(&[&[0u8][..], &b64_decode(N_2048).unwrap()].concat());
    let padded = rsa(&padded_n, "AAEAAQ", "").unwrap();
    assert_eq!(padded, key(""));
    assert_eq!(serde_json::to_value(&padded).unwrap()["n"], N_2048);
    assert_eq!(serde_json::to_value(&padded).unwrap()["e"], "AQAB");
    // Missing or badly encoded members, and a private key.
    assert_eq!(Jwk::parse(&format!(r#"{{"kty":"RSA","e":"{E}"}}"#)), Err(JoseError::InvalidKey("n is missing")));
    assert_eq!(Jwk::parse(&format!(r#"{{"kty":"RSA","n":"{N_2048}"}}"#)), Err(JoseError::InvalidKey("e is missing")));
    assert_eq!(rsa(&format!("{N_2048}="), E, ""), Err(JoseError::InvalidKey("n is not base64url")));
    assert_eq!(rsa(&N_2048.replace('_', "/"), E, ""), Err(JoseError::InvalidKey("n is not base64url")));
    assert_eq!(rsa(N_2048, "AQAB=", ""), Err(JoseError::InvalidKey("e is not base64url")));
    assert!(matches!(Jwk::parse(r#"{"kty":"RSA","n":7,"e":"AQAB"}"#), Err(JoseError::Malformed(_))));
    assert!(matches!(rsa(N_2048, E, r#","d":"AQAB""#), Err(JoseError::InvalidKey(_))));
}

#[test]
fn an_rs256_header_never_uses_an_ec_or_okp_key() {
    let mut entropy = SeededEntropy::new(3);
    let ec = PrivateKey::generate(Algorithm::ES256, &mut entropy, Some("rsa-2048".into()));
    let ed = PrivateKey::generate(Algorithm::EdDSA, &mut entropy, Some("rsa-2048".into()));
    // The token's kid names an EC (or OKP) key: a key of another algorithm.
    for other in [&ec, &ed] {
        let keys = set(vec![other.public_jwk()]);
        assert_eq!(verify(RS256_TOKEN, &keys, &Algorithm::ALL), Err(JoseError::KeyMismatch));
        assert_eq!(verify(PS256_TOKEN, &keys, &Algorithm::ALL), Err(JoseError::KeyMismatch));
    }
    // Without kid, EC and OKP keys are no candidates for RS256.
    let keys = set(vec![ec.public_jwk(), ed.public_jwk()]);
    assert_eq!(verify(RS256_NO_KID, &keys, &Algorithm::ALL), Err(JoseError::UnknownKey));
    // The reverse: ES256 and EdDSA tokens whose kid names an RSA key.
    let rsa_only = set(vec![key(r#","kid":"rsa-2048""#)]);
    for signer in [&ec, &ed] {
        let token = sign(None, &claims(), signer).unwrap();
        assert_eq!(verify(&token, &rsa_only, &Algorithm::ALL), Err(JoseError::KeyMismatch));
    }
    // An RSA signature under an ES256 header is refused for its length, before any key is looked up.
    let header = b64_encode(br#"{"alg":"ES256","kid":"rsa-2048"}"#);
    let body = RS256_TOKEN.split_once('.').unwrap().1;
    assert_eq!(verify(&format!("{header}.{body}"), &rsa_only, &Algorithm::ALL), Err(JoseError::BadSignature));
}

#[test]
fn the_jwk_alg_and_use_must_fit() {
    for (extra, token) in [
        (r#","kid":"rsa-2048","alg":"PS256""#, RS256_TOKEN),
        (r#","kid":"rsa-2048","alg":"RS256""#, PS256_TOKEN),
        (r#","kid":"rsa-2048","alg":"RS384""#, RS256_TOKEN),
        (r#","kid":"rsa-2048","alg":"RSA-OAEP""#, RS256_TOKEN),
        (r#","kid":"rsa-2048","alg":"HS256""#, RS256_TOKEN),
        (r#","kid":"rsa-2048","use":"enc""#, RS256_TOKEN),
        (r#","kid":"rsa-2048","use":"enc","alg":"RS256""#, RS256_TOKEN),
    ] {
        assert_eq!(verify(token, &set(vec![key(extra)]), RSA_BOTH), Err(JoseError::KeyMismatch), "{extra}");
    }
    // Without kid a key of the wrong alg is simply no candidate.
    assert_eq!(verify(RS256_NO_KID, &set(vec![key(r#","alg":"PS256""#)]), RSA_BOTH), Err(JoseError::UnknownKey));
    let pinned = key(r#","alg":"RS256""#);
    assert!(pinned.usable_for(Algorithm::RS256));
    assert!(!pinned.usable_for(Algorithm::PS256) && !pinned.usable_for(Algorithm::ES256));
}

#[test]
fn alg_none_and_hmac_stay_refused_next_to_rsa_keys() {
    let keys = set(vec![key(r#","kid":"rsa-2048""#)]);
    let payload = b64_encode(claims().to_string().as_bytes());
    for alg in ["none", "HS256", "HS384", "HS512", "RS384", "RS512", "PS384", "PS512", "RS1", "rs256"] {
        let header = b64_encode(format!(r#"{{"alg":"{alg}","kid":"rsa-2048"}}"#).as_bytes());
        let token = format!("{header}.{payload}.{}", RS256_TOKEN.rsplit_once('.').unwrap().1);
        assert_eq!(verify(&token, &keys, &Algorithm::ALL), Err(JoseError::UnsupportedAlgorithm), "{alg}");
    }
    let none = format!("{}.{payload}.", b64_encode(br#"{"alg":"none"}"#));
    assert_eq!(verify(&none, &keys, &Algorithm::ALL), Err(JoseError::UnsupportedAlgorithm));
    // The classic confusion: HS256 with the RSA public key (its JWK, its modulus) as the HMAC secret.
    let input = format!("{}.{payload}", b64_encode(br#"{"alg":"HS256","kid":"rsa-2048"}"#));
    for secret in [serde_json::to_vec(&key("")).unwrap(), b64_decode(N_2048).unwrap(), N_2048.as_bytes().to_vec()] {
        let token = format!("{input}.{}", b64_encode(&hmac_sha256(&secret, input.as_bytes())));
        assert_eq!(verify(&token, &keys, &Algorithm::ALL), Err(JoseError::UnsupportedAlgorithm));
    }
    // A genuine RS256 token is refused by a caller that does not allow RSA, before any key is looked up.
    assert_eq!(verify(RS256_TOKEN, &keys, &Algorithm::SIGNING), Err(JoseError::UnsupportedAlgorithm));
    assert_eq!(verify(PS256_TOKEN, &keys, RS_ONLY), Err(JoseError::UnsupportedAlgorithm));
    let strict = Validation::new(UnixTime::from_secs(NOW)).any_audience().algorithms(&[Algorithm::ES256]);
    assert_eq!(decode(RS256_TOKEN, &keys, &strict), Err(JoseError::UnsupportedAlgorithm));
}

/// HMAC-SHA256 (RFC 2104), to build the confusion token without an HMAC dependency.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new().chain_update(k.map(|b| b ^ 0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(k.map(|b| b ^ 0x5c)).chain_update(inner).finalize().to_vec()
}

#[test]
fn rsa_jwk_shape_and_thumbprint() {
    let rfc = rsa(RFC7638_N, E, r#","alg":"RS256","kid":"2011-04-29""#).unwrap();
    assert_eq!(rfc.thumbprint_sha256().as_deref(), Some(RFC7638_THUMBPRINT));
    assert_eq!((rfc.kty(), rfc.crv(), rfc.rsa_modulus_bits()), ("RSA", None, Some(2048)));
    assert_eq!(
        (rfc.algorithm(), rfc.algorithms()),
        (Some(Algorithm::RS256), &[Algorithm::RS256, Algorithm::PS256][..])
    );
    assert!(rfc.is_supported());
    // Without alg an RSA key has no single algorithm; pinning marks it for signatures only.
    let bare = key("");
    assert_eq!(bare.algorithm(), None);
    let pinned = bare.clone().pinned();
    assert_eq!((pinned.alg(), pinned.key_use()), (None, Some("sig")));
    assert_eq!(key(r#","alg":"RS384""#).algorithm(), None);
    // Serialised with n and e only (never x, y, crv or d), and read back equal; kept in sets.
    let out = serde_json::to_value(&rfc).unwrap();
    assert_eq!(out, json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}));
    assert_eq!(Jwk::from_value(out).unwrap(), rfc);
    let keys = set(vec![rfc.clone(), bare]);
    let doc = serde_json::to_value(&keys).unwrap();
    assert_eq!(doc["keys"].as_array().unwrap().len(), 2);
    assert_eq!(serde_json::from_value::<JwkSet>(doc).unwrap(), keys);
    // Debug shows the size, not 256 bytes of modulus.
    let shown = format!("{rfc:?}");
    assert!(shown.contains("bits: 2048") && shown.len() < 300, "{shown}");
    // The thumbprint is over the required members in order (RFC 7638 §3.2), recomputed by hand.
    let canonical = format!(r#"{{"e":"AQAB","kty":"RSA","n":"{N_2048}"}}"#);
    assert_eq!(key(r#","kid":"x""#).thumbprint_sha256().unwrap(), b64_encode(&Sha256::digest(canonical.as_bytes())));
}

#[test]
fn authflow_never_signs_with_rsa() {
    for alg in [Algorithm::RS256, Algorithm::PS256] {
        assert!(!alg.can_sign());
        assert_eq!(
            PrivateKey::from_bytes(alg, &[7u8; 32]).unwrap_err(),
            JoseError::InvalidKey("authflow signs with ES256 or EdDSA only")
        );
    }
    let generated =
        std::panic::catch_unwind(|| PrivateKey::generate(Algorithm::RS256, &mut SeededEntropy::new(1), None));
    assert!(generated.is_err());
}

#[test]
fn rsa_client_assertions_are_accepted() {
    let client = "https://client.example/metadata.json";
    let keys = set(vec![key(r#","kid":"rsa-2048""#)]);
    let now = UnixTime::from_secs(NOW + 10);
    let max = std::time::Duration::from_secs(300);
    for (token, alg) in [(ASSERTION_RS256, Algorithm::RS256), (ASSERTION_PS256, Algorithm::PS256)] {
        let a = validate_client_assertion(token, &keys, client, &["https://as.example/token"], now, max).unwrap();
        assert_eq!((a.algorithm(), a.jti.as_str(), a.client_id.as_str()), (alg, "rsa-assertion-1", client));
        // Tampered, or from a 1024-bit key's holder (whose key cannot even be registered).
        let mut sig = signature(token);
        sig[0] ^= 0x80;
        let bad = with_signature(token, &sig);
        assert_eq!(
            validate_client_assertion(&bad, &keys, client, &["https://as.example/token"], now, max),
            Err(JoseError::BadSignature)
        );
    }
    assert_eq!(CLIENT_ASSERTION_ALGORITHMS, Algorithm::ALL);
}

proptest! {
    #[test]
    fn rsa_members_never_panic(n in proptest::option::of("[A-Za-z0-9_=-]{0,400}"), e in proptest::option::of("[A-Za-z0-9_=-]{0,12}")) {
        let v = json!({"kty": "RSA", "n": n, "e": e});
        if let Ok(jwk) = Jwk::from_value(v) {
            let _ = jwk.thumbprint_sha256();
            let _ = serde_json::to_string(&jwk).unwrap();
        }
    }

    #[test]
    fn arbitrary_rsa_signatures_never_verify(sig in proptest::collection::vec(any::<u8>(), 250..260), ps in any::<bool>()) {
        let keys = set(vec![key(r#","kid":"rsa-2048""#)]);
        let token = with_signature(if ps { PS256_TOKEN } else { RS256_TOKEN }, &sig);
        prop_assert!(verify_raw(&token, &keys, RSA_BOTH).is_err());
    }
}
