//! JWT checks at the handshake: finding the client's token and verifying it.
//!
//! With `--jwt-secret` (HS256) or `--jwt-public-key` (RS256 or ES256) set, every client must
//! present a token before the upgrade, and its `sub` claim becomes the connection's user id.
//! The token can arrive three ways because clients differ: `?token=` works everywhere,
//! `Authorization: Bearer` suits apps and servers, and browsers, which cannot set headers on a
//! WebSocket, can offer the subprotocols `["wsgate.jwt", token]`.
//!
//! A gateway accepts exactly one algorithm. A token whose header names another one is refused
//! before any key is used, which shuts out `alg: none` and the classic confusion attack (an
//! HS256 token "signed" with the RSA public key). Keys are checked when the verifier is built,
//! so a wrong `--jwt-public-key` stops the gateway at startup instead of failing every client
//! later with "invalid signature". The cryptography is `jsonwebtoken` on its pure-Rust
//! RustCrypto backend; every [`JwtError`] displays as the plain-text body of the HTTP 401.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, Validation};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::traits::PublicKeyParts;
use serde::Deserialize;

use crate::websocket::subprotocol;

/// Longest `sub` accepted: the same limit as any user id.
const MAX_SUBJECT_CHARS: usize = crate::connections::state::MAX_NAME_CHARS;

/// Longest token looked at; real tokens are a few hundred bytes, and the request head is
/// bounded anyway.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Shortest HS256 secret: RFC 7518 section 3.2 requires a key at least as long as the hash.
const MIN_SECRET_BYTES: usize = 32;

/// Smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// The signature algorithm a gateway accepts; exactly one per gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwtAlgorithm {
    /// HMAC with SHA-256 and a shared secret (`--jwt-secret`).
    Hs256,
    /// RSA PKCS#1 v1.5 with SHA-256 (`--jwt-public-key` holding an RSA key).
    Rs256,
    /// ECDSA on P-256 with SHA-256 (`--jwt-public-key` holding a P-256 key).
    Es256,
}

impl JwtAlgorithm {
    /// The name used in JWT headers and on the command line.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }

    fn to_library(self) -> Algorithm {
        match self {
            Self::Hs256 => Algorithm::HS256,
            Self::Rs256 => Algorithm::RS256,
            Self::Es256 => Algorithm::ES256,
        }
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JwtAlgorithm {
    type Err = JwtConfigError;

    /// Parses "HS256", "RS256" or "ES256", in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        [Self::Hs256, Self::Rs256, Self::Es256]
            .into_iter()
            .find(|alg| alg.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| JwtConfigError::UnknownAlgorithm(s.to_owned()))
    }
}

/// Why the JWT settings cannot work. Each message names the flag to fix.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JwtConfigError {
    #[error(
        "unknown --jwt-algorithm {0:?}: use HS256, RS256 or ES256, or leave it out to infer it from the key"
    )]
    UnknownAlgorithm(String),
    #[error("no JWT key: set --jwt-secret (HS256) or --jwt-public-key FILE (RS256 or ES256)")]
    NoKey,
    #[error(
        "--jwt-secret and --jwt-public-key are both set: keep only one \
         (--jwt-secret for HS256, --jwt-public-key for RS256 or ES256)"
    )]
    BothKeys,
    #[error(
        "--jwt-secret is {len} bytes, too short for HS256 (at least {MIN_SECRET_BYTES} bytes, RFC 7518): \
         use a long random secret, for example the output of `openssl rand -base64 32`, and give \
         the same string to the token issuer"
    )]
    SecretTooShort { len: usize },
    #[error(
        "--jwt-algorithm {0} needs --jwt-public-key (a PEM public key), but --jwt-secret was given: \
         set --jwt-public-key instead, or drop --jwt-algorithm to use HS256 with the secret"
    )]
    SecretWithPublicKeyAlgorithm(JwtAlgorithm),
    #[error(
        "--jwt-algorithm HS256 needs --jwt-secret, but --jwt-public-key was given: set --jwt-secret \
         instead, or drop --jwt-algorithm to infer RS256 or ES256 from the key"
    )]
    PublicKeyWithHs256,
    #[error("--jwt-public-key: {0}")]
    PublicKey(String),
}

/// Why a client's token was refused. The message is the plain-text body of the HTTP 401 and
/// tells the client what to do.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JwtError {
    #[error(
        "missing token: send it as ?token=..., Authorization: Bearer ... or Sec-WebSocket-Protocol: wsgate.jwt, ..."
    )]
    Missing,
    #[error("token expired: get a new token and reconnect")]
    Expired,
    #[error(
        "token not yet valid: its nbf (not before) time is in the future; retry later, or check \
         the clock of the server that issued it"
    )]
    NotYetValid,
    #[error(
        "invalid signature: the token was not signed with the key this gateway trusts; get a \
         token from the issuer this gateway is configured for"
    )]
    BadSignature,
    #[error("token algorithm {found} not accepted: this gateway accepts only {expected} tokens")]
    WrongAlgorithm {
        found: String,
        expected: JwtAlgorithm,
    },
    #[error("malformed token: {0}; send the JWT exactly as issued")]
    Malformed(String),
    #[error(
        "token has no usable exp claim: tokens must expire; the issuer must set exp to a number \
         of seconds since the Unix epoch"
    )]
    NoExpiry,
    #[error("invalid {0} claim: it must be a number of seconds since the Unix epoch")]
    BadTimeClaim(String),
    #[error("token has no sub claim: the token must name the user in sub, a non-empty string")]
    NoSubject,
    #[error("invalid sub claim: {0}")]
    BadSubject(String),
}

impl From<jsonwebtoken::errors::Error> for JwtError {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::InvalidSignature => Self::BadSignature,
            K::ExpiredSignature => Self::Expired,
            K::ImmatureSignature => Self::NotYetValid,
            K::MissingRequiredClaim(claim) if claim == "exp" => Self::NoExpiry,
            K::InvalidClaimFormat(claim) => Self::BadTimeClaim(claim.clone()),
            K::InvalidToken => {
                Self::Malformed("it is not three base64url parts separated by dots".into())
            }
            K::Base64(_) => Self::Malformed("a part is not valid base64url".into()),
            K::Utf8(_) => Self::Malformed("its header or claims are not UTF-8".into()),
            K::Json(json) => Self::Malformed(format!(
                "its header or claims are not the JSON a JWT needs ({json})"
            )),
            _ => Self::Malformed(e.to_string()),
        }
    }
}

/// Checks client tokens against one key and one algorithm.
#[derive(Clone)]
pub(crate) struct JwtVerifier {
    algorithm: JwtAlgorithm,
    key: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithm", &self.algorithm)
            .field("key", &"[redacted]")
            .field("leeway_secs", &self.validation.leeway)
            .finish()
    }
}

impl JwtVerifier {
    /// Exactly one of `secret` (HS256) or `public_key_pem` (RS256/ES256) is given; `algorithm` is
    /// optional and inferred (secret => HS256; a PEM key => RS256 if it parses as RSA, else
    /// ES256).
    ///
    /// The secret is used as its UTF-8 bytes (not base64-decoded) and must be at least 32 bytes.
    /// The PEM must hold a public key (`BEGIN PUBLIC KEY`, or `BEGIN RSA PUBLIC KEY`): RSA of at
    /// least 2048 bits, or EC on P-256. `leeway` is the clock skew allowed on `exp` and `nbf`,
    /// rounded up to whole seconds.
    pub(crate) fn new(
        algorithm: Option<JwtAlgorithm>,
        secret: Option<&str>,
        public_key_pem: Option<&[u8]>,
        leeway: Duration,
    ) -> Result<Self, JwtConfigError> {
        let (algorithm, key) = match (secret, public_key_pem) {
            (None, None) => return Err(JwtConfigError::NoKey),
            (Some(_), Some(_)) => return Err(JwtConfigError::BothKeys),
            (Some(secret), None) => match algorithm {
                None | Some(JwtAlgorithm::Hs256) => {
                    if secret.len() < MIN_SECRET_BYTES {
                        return Err(JwtConfigError::SecretTooShort { len: secret.len() });
                    }
                    (
                        JwtAlgorithm::Hs256,
                        DecodingKey::from_secret(secret.as_bytes()),
                    )
                }
                Some(other) => return Err(JwtConfigError::SecretWithPublicKeyAlgorithm(other)),
            },
            (None, Some(pem)) => {
                if algorithm == Some(JwtAlgorithm::Hs256) {
                    return Err(JwtConfigError::PublicKeyWithHs256);
                }
                let (found, key) = load_public_key(pem)?;
                if let Some(wanted) = algorithm.filter(|&wanted| wanted != found) {
                    return Err(JwtConfigError::PublicKey(format!(
                        "the key is for {found}, but --jwt-algorithm is {wanted}: give a key for \
                         {wanted} ({}), or drop --jwt-algorithm to use {found}",
                        key_description(wanted)
                    )));
                }
                (found, key)
            }
        };

        let mut validation = Validation::new(algorithm.to_library());
        validation.leeway = leeway.as_secs() + u64::from(leeway.subsec_nanos() > 0);
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // wsgate has no audience setting; an `aud` claim is neither required nor refused.
        validation.validate_aud = false;
        Ok(Self {
            algorithm,
            key,
            validation,
        })
    }

    /// Checks signature, `exp` (required), `nbf` (when present); returns the `sub` claim
    /// (required, non-empty, at most 128 characters).
    pub(crate) fn verify(&self, token: &str) -> Result<String, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::Malformed(format!(
                "it is {} bytes, longer than the {MAX_TOKEN_BYTES} bytes accepted",
                token.len()
            )));
        }
        // Checked here, before any key is used, so the refusal can name what the token claims.
        let header = jsonwebtoken::decode_header(token)?;
        if header.alg != self.algorithm.to_library() {
            return Err(JwtError::WrongAlgorithm {
                found: format!("{:?}", header.alg),
                expected: self.algorithm,
            });
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)?;
        match data.claims.sub {
            None => Err(JwtError::NoSubject),
            Some(Subject::Text(sub)) if sub.is_empty() => Err(JwtError::NoSubject),
            Some(Subject::Text(sub)) if sub.chars().count() > MAX_SUBJECT_CHARS => {
                Err(JwtError::BadSubject(format!(
                    "it is {} characters; a user id is at most {MAX_SUBJECT_CHARS} characters",
                    sub.chars().count()
                )))
            }
            Some(Subject::Text(sub)) => Ok(sub),
            Some(Subject::Other(_)) => Err(JwtError::BadSubject(
                "it must be a string naming the user".into(),
            )),
        }
    }
}

/// The claims read here; `exp` and `nbf` are checked by `jsonwebtoken` itself.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<Subject>,
}

/// `sub` as sent: a string, or something else that is refused with a clear reason rather than
/// a JSON error.
#[derive(Deserialize)]
#[serde(untagged)]
enum Subject {
    Text(String),
    Other(serde::de::IgnoredAny),
}

/// What `--jwt-public-key` should hold for an algorithm, for error messages.
fn key_description(algorithm: JwtAlgorithm) -> &'static str {
    match algorithm {
        JwtAlgorithm::Hs256 => "a shared secret",
        JwtAlgorithm::Rs256 => "an RSA public key of at least 2048 bits",
        JwtAlgorithm::Es256 => "an EC public key on P-256",
    }
}

/// Reads a PEM public key and says which algorithm it is for.
fn load_public_key(pem: &[u8]) -> Result<(JwtAlgorithm, DecodingKey), JwtConfigError> {
    let bad = |reason: String| JwtConfigError::PublicKey(reason);
    let label = pem_label(pem).ok_or_else(|| {
        bad(
            "the file is not a PEM public key (no -----BEGIN PUBLIC KEY----- line); if it is \
             DER, convert it: `openssl pkey -pubin -inform DER -in key.der -out key.pem`"
                .into(),
        )
    })?;
    match label {
        "PUBLIC KEY" | "RSA PUBLIC KEY" => {}
        l if l.contains("PRIVATE KEY") => {
            return Err(bad(format!(
                "the file holds a private key ({l}); give the gateway only the public key: \
                 `openssl pkey -in private.pem -pubout -out public.pem`"
            )));
        }
        "CERTIFICATE" => {
            return Err(bad("the file holds a certificate; give its public key: \
                 `openssl x509 -in cert.pem -pubkey -noout > public.pem`"
                .into()));
        }
        other => {
            return Err(bad(format!(
                "the file holds a {other:?} PEM block; expected -----BEGIN PUBLIC KEY-----"
            )));
        }
    }

    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        // jsonwebtoken parses the RSA key only when verifying; parse it now, as it will then.
        let DecodingKeyKind::SecretOrDer(der) = key.kind() else {
            return Err(bad("the RSA key could not be read".into()));
        };
        let public = rsa::RsaPublicKey::from_pkcs1_der(der)
            .map_err(|e| bad(format!("the RSA public key is not usable: {e}")))?;
        let bits = public.size() * 8;
        if bits < MIN_RSA_BITS {
            return Err(bad(format!(
                "the RSA key is {bits} bits; RS256 needs at least {MIN_RSA_BITS}: \
                 generate a new key pair and give tokens signed with it"
            )));
        }
        return Ok((JwtAlgorithm::Rs256, key));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        // Building a verifier parses the point; an empty signature then simply does not match.
        return match jsonwebtoken::crypto::verify("", b"", &key, Algorithm::ES256) {
            Ok(_) => Ok((JwtAlgorithm::Es256, key)),
            Err(_) => Err(bad(
                "the EC key is not on P-256 (prime256v1), the only curve ES256 uses".into(),
            )),
        };
    }
    if DecodingKey::from_ed_pem(pem).is_ok() {
        return Err(bad(
            "the file holds an Ed25519 key; wsgate accepts RSA (RS256) or P-256 EC (ES256) keys"
                .into(),
        ));
    }
    Err(bad(
        "the file's public key cannot be read as RSA (RS256) or P-256 EC (ES256)".into(),
    ))
}

/// The label of the first PEM block, as in `-----BEGIN <label>-----`.
fn pem_label(pem: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(pem).ok()?;
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let rest = &text[start..];
    let end = rest.find("-----")?;
    Some(rest[..end].trim())
}

/// A token and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FoundToken {
    pub token: String,
    /// `Some("wsgate.jwt")` when the token came from `Sec-WebSocket-Protocol`: the gateway
    /// must answer with that subprotocol or browsers drop the connection.
    pub subprotocol: Option<&'static str>,
}

/// Looks in the query string (`token=`, percent-decoded), then `Authorization: Bearer`, then
/// `Sec-WebSocket-Protocol: wsgate.jwt, <token>` (comma-separated list; the token is the item
/// after/other than "wsgate.jwt"). Empty values count as absent, so the next place is tried.
///
/// `websocket_protocol` is the header's value; when a request has several such headers, pass
/// them joined with ", ".
pub(crate) fn find_token(
    query: &str,
    authorization: Option<&str>,
    websocket_protocol: Option<&str>,
) -> Option<FoundToken> {
    if let Some(token) = token_from_query(query) {
        return Some(FoundToken {
            token,
            subprotocol: None,
        });
    }
    if let Some(token) = authorization.and_then(bearer_token) {
        return Some(FoundToken {
            token: token.to_owned(),
            subprotocol: None,
        });
    }
    let token = websocket_protocol.and_then(token_from_protocols)?;
    Some(FoundToken {
        token: token.to_owned(),
        subprotocol: Some(super::SUBPROTOCOL),
    })
}

/// The first non-empty `token=` parameter, percent-decoded.
fn token_from_query(query: &str) -> Option<String> {
    let query = query.strip_prefix('?').unwrap_or(query);
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| percent_decode(name) == "token")
        .map(|(_, value)| percent_decode(value))
        .find(|value| !value.is_empty())
}

/// Decodes `%XX` escapes. A `%` not followed by two hex digits stays as it is, and `+` stays a
/// plus: JWTs never contain spaces, so reading `+` as one could only corrupt a token.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'%'), Some(&hi), Some(&lo)) => hex_value(hi).zip(hex_value(lo)),
            _ => None,
        };
        match escaped {
            Some((hi, lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    // Invalid UTF-8 cannot be a JWT; keep it visible so the client hears "malformed token"
    // rather than "missing token".
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The credentials of `Authorization: Bearer <token>`; the scheme is case-insensitive.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// In `wsgate.jwt, <token>`: the item right after `wsgate.jwt`, or else the one just before it.
fn token_from_protocols(header: &str) -> Option<&str> {
    let items: Vec<&str> = header
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect();
    let at = items.iter().position(|item| *item == super::SUBPROTOCOL)?;
    let after = items.get(at + 1).copied();
    let before = at.checked_sub(1).and_then(|i| items.get(i)).copied();
    // The other names a client may offer beside it are never the token.
    let ours = |item: &&str| *item == super::SUBPROTOCOL || *item == subprotocol::NAME;
    after
        .filter(|item| !ours(item))
        .or(before.filter(|item| !ours(item)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use jsonwebtoken::{EncodingKey, Header, get_current_timestamp};
    use serde::Serialize;

    use super::*;

    const SECRET: &str = "test-secret-0123456789-abcdefghijklmnop";
    const RS_PRIVATE: &[u8] = include_bytes!("../../tests/data/jwt-rs256-private.pem");
    const RS_PUBLIC: &[u8] = include_bytes!("../../tests/data/jwt-rs256-public.pem");
    const ES_PRIVATE: &[u8] = include_bytes!("../../tests/data/jwt-es256-private.pem");
    const ES_PUBLIC: &[u8] = include_bytes!("../../tests/data/jwt-es256-public.pem");

    /// The test RSA key in PKCS#1 form (`openssl rsa -pubin -RSAPublicKey_out`).
    const RS_PUBLIC_PKCS1: &str = "-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEAxezBoiOa0qUDU/4nEhvjxC2cYg7TKHR5pfvXRQFxZwxFZosmGIaK
+nKa74CVHvoZwYEeKmRGMeQXVO3iIIQdezHBGuxKEq08L8BTU2epw2eMJ17tNHDv
GGqiTDVpFcFVZ2IF8QXYr17/QgQynPP9RlzyT8znrxbcDNftx3V4ake2+VTNPnD5
Kljur2FUXEk66fTirj+jYyj/rB4uYd6hq1KbpnGgVFXsRM9gZo7huS4Z+BYWjzf8
t/RUf5xEs5LZdY/z4xOBuiswxipXnP3OVhS+SEd0XvqHyhDNbBxujhx34kyrv+XR
9TgiDH9yZwxXkXV8OPleSahM/HAtxgUC6QIDAQAB
-----END RSA PUBLIC KEY-----
";
    const OTHER_RSA_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAz9JyV8UcEPxXTRyfesks
l4wWCm8pzRHAPIhEtoJOGILojzO+dVWoY4NBuw7bGxEHL3qxLtv8GC214hiPFF2o
PZTm1jXD9ijN+4HXpXAdh1YLXYRSiurFVCVTM56mlv64U/KEG87oj0c3J5aeF55m
M+pnQ4edRbCTkJtI3ipdXaux12e0S2tBT606stjKJtq9UwWfj0hLJjsvEPes9vUS
v6pWnow2Hq1GqQmKZazRVp6ExTyOD1LJH6SVzUspJH7Oz5ZQgKTufFRaiH1WTeAE
H4U+5UBlX1MKMNs/95DsR4mDrS8H30fSto+zXEWBdR5HsSuvypOEN9XXtxdMCNF8
lQIDAQAB
-----END PUBLIC KEY-----
";
    const OTHER_P256_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEgjhsqjE+smDjlRrAyUiBEH0xA50A
csDj7FXc5oOUDh5flxqVkEEQG+s5IXBqdLwWnwqscNI/iBGyZJaMpFY6Aw==
-----END PUBLIC KEY-----
";
    const P384_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEgECGdEeydvS/KzGGj+s+Ko198CPuDJqw
MVxnKQ+qA7vXZdV1Ik4y3cwfc0zfXdhQaN/rXXxb27pUhHhj3nk/8hQ5BGyorhFR
ywn/x6XTF979VHZmzNp/cbqMDDOJuhED
-----END PUBLIC KEY-----
";
    const ED25519_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAia52jByIzl45x0DxL6Cy+qVDdQ8h4XiDOKWC7suB9h0=
-----END PUBLIC KEY-----
";
    const RSA1024_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDGuN/dNMmpol7geA6WnqWelut+
k0HWiR2YS93m9lw6TE8BMwSwYhVCnwPirW+b6A2ePeuv+cfwJ1onggi7eiCn9vmT
/HpjdsDb7wR0iS8LmI32kP3tBLQ+GAOUFsf96ae9fP4lJkKi43fYNGIFWOwqOYYU
wJAqNgWDBzoqFqK06wIDAQAB
-----END PUBLIC KEY-----
";

    /// A claim value of any JSON shape a test needs.
    #[derive(Serialize)]
    #[serde(untagged)]
    enum V {
        N(u64),
        S(String),
        Null,
    }

    fn s(text: &str) -> V {
        V::S(text.to_owned())
    }

    fn claims(pairs: Vec<(&'static str, V)>) -> BTreeMap<&'static str, V> {
        pairs.into_iter().collect()
    }

    fn now() -> u64 {
        get_current_timestamp()
    }

    fn good() -> BTreeMap<&'static str, V> {
        claims(vec![("sub", s("alice")), ("exp", V::N(now() + 600))])
    }

    fn mint(alg: Algorithm, key: &EncodingKey, claims: &BTreeMap<&'static str, V>) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
    }

    fn hs_token(claims: &BTreeMap<&'static str, V>) -> String {
        mint(
            Algorithm::HS256,
            &EncodingKey::from_secret(SECRET.as_bytes()),
            claims,
        )
    }

    fn rs_token(claims: &BTreeMap<&'static str, V>) -> String {
        let key = EncodingKey::from_rsa_pem(RS_PRIVATE).unwrap();
        mint(Algorithm::RS256, &key, claims)
    }

    fn es_token(claims: &BTreeMap<&'static str, V>) -> String {
        let key = EncodingKey::from_ec_pem(ES_PRIVATE).unwrap();
        mint(Algorithm::ES256, &key, claims)
    }

    fn leeway() -> Duration {
        Duration::from_secs(5)
    }

    fn hs() -> JwtVerifier {
        JwtVerifier::new(None, Some(SECRET), None, leeway()).unwrap()
    }

    fn with_pem(pem: &[u8]) -> JwtVerifier {
        JwtVerifier::new(None, None, Some(pem), leeway()).unwrap()
    }

    fn config_error(alg: Option<JwtAlgorithm>, secret: Option<&str>, pem: Option<&[u8]>) -> String {
        JwtVerifier::new(alg, secret, pem, leeway())
            .unwrap_err()
            .to_string()
    }

    // --- algorithm names ---

    #[test]
    fn algorithm_names_parse_in_any_case() {
        assert_eq!(
            "HS256".parse::<JwtAlgorithm>().unwrap(),
            JwtAlgorithm::Hs256
        );
        assert_eq!(
            "hs256".parse::<JwtAlgorithm>().unwrap(),
            JwtAlgorithm::Hs256
        );
        assert_eq!(
            "Rs256".parse::<JwtAlgorithm>().unwrap(),
            JwtAlgorithm::Rs256
        );
        assert_eq!(
            " es256 ".parse::<JwtAlgorithm>().unwrap(),
            JwtAlgorithm::Es256
        );
        assert_eq!(JwtAlgorithm::Es256.to_string(), "ES256");
        for bad in ["none", "HS384", "PS256", ""] {
            let e = bad.parse::<JwtAlgorithm>().unwrap_err().to_string();
            assert!(e.contains("--jwt-algorithm"), "{e}");
            assert!(e.contains("HS256, RS256 or ES256"), "{e}");
        }
    }

    // --- valid tokens ---

    #[test]
    fn hs256_token_gives_its_subject() {
        let v = hs();
        assert_eq!(v.algorithm, JwtAlgorithm::Hs256);
        assert_eq!(v.verify(&hs_token(&good())).unwrap(), "alice");
    }

    #[test]
    fn rs256_token_gives_its_subject_with_inferred_or_explicit_algorithm() {
        let v = with_pem(RS_PUBLIC);
        assert_eq!(v.algorithm, JwtAlgorithm::Rs256);
        assert_eq!(v.verify(&rs_token(&good())).unwrap(), "alice");

        let v =
            JwtVerifier::new(Some(JwtAlgorithm::Rs256), None, Some(RS_PUBLIC), leeway()).unwrap();
        assert_eq!(v.verify(&rs_token(&good())).unwrap(), "alice");
    }

    #[test]
    fn rs256_accepts_a_pkcs1_public_key() {
        let v = with_pem(RS_PUBLIC_PKCS1.as_bytes());
        assert_eq!(v.algorithm, JwtAlgorithm::Rs256);
        assert_eq!(v.verify(&rs_token(&good())).unwrap(), "alice");
    }

    #[test]
    fn es256_token_gives_its_subject_with_inferred_or_explicit_algorithm() {
        let v = with_pem(ES_PUBLIC);
        assert_eq!(v.algorithm, JwtAlgorithm::Es256);
        assert_eq!(v.verify(&es_token(&good())).unwrap(), "alice");

        let v =
            JwtVerifier::new(Some(JwtAlgorithm::Es256), None, Some(ES_PUBLIC), leeway()).unwrap();
        assert_eq!(v.verify(&es_token(&good())).unwrap(), "alice");
    }

    #[test]
    fn explicit_hs256_with_a_secret_works() {
        let v = JwtVerifier::new(Some(JwtAlgorithm::Hs256), Some(SECRET), None, leeway()).unwrap();
        assert_eq!(v.verify(&hs_token(&good())).unwrap(), "alice");
    }

    #[test]
    fn extra_claims_and_an_audience_are_accepted() {
        let mut c = good();
        c.insert("aud", s("some-app"));
        c.insert("iss", s("https://issuer.example"));
        c.insert("iat", V::N(now()));
        c.insert("name", s("Alice"));
        assert_eq!(hs().verify(&hs_token(&c)).unwrap(), "alice");
    }

    // --- time claims ---

    #[test]
    fn expired_token_is_refused() {
        let c = claims(vec![("sub", s("alice")), ("exp", V::N(now() - 3600))]);
        let e = hs().verify(&hs_token(&c)).unwrap_err();
        assert!(matches!(e, JwtError::Expired), "{e:?}");
        assert!(e.to_string().starts_with("token expired"), "{e}");
    }

    #[test]
    fn leeway_covers_a_token_that_just_expired() {
        let c = claims(vec![("sub", s("alice")), ("exp", V::N(now() - 2))]);
        let token = hs_token(&c);
        assert_eq!(hs().verify(&token).unwrap(), "alice");
        let strict = JwtVerifier::new(None, Some(SECRET), None, Duration::ZERO).unwrap();
        assert!(matches!(strict.verify(&token), Err(JwtError::Expired)));
    }

    #[test]
    fn leeway_rounds_up_to_whole_seconds() {
        let v = JwtVerifier::new(None, Some(SECRET), None, Duration::from_millis(1)).unwrap();
        assert_eq!(v.validation.leeway, 1);
        let v = JwtVerifier::new(None, Some(SECRET), None, Duration::from_millis(5000)).unwrap();
        assert_eq!(v.validation.leeway, 5);
    }

    #[test]
    fn future_nbf_is_refused() {
        let mut c = good();
        c.insert("nbf", V::N(now() + 3600));
        let e = hs().verify(&hs_token(&c)).unwrap_err();
        assert!(matches!(e, JwtError::NotYetValid), "{e:?}");
        assert!(e.to_string().contains("not yet valid"), "{e}");
    }

    #[test]
    fn past_nbf_or_one_within_leeway_is_accepted() {
        let mut c = good();
        c.insert("nbf", V::N(now() - 60));
        assert_eq!(hs().verify(&hs_token(&c)).unwrap(), "alice");
        c.insert("nbf", V::N(now() + 2));
        assert_eq!(hs().verify(&hs_token(&c)).unwrap(), "alice");
    }

    #[test]
    fn exp_is_required_and_must_be_a_number() {
        let c = claims(vec![("sub", s("alice"))]);
        let e = hs().verify(&hs_token(&c)).unwrap_err();
        assert!(matches!(e, JwtError::NoExpiry), "{e:?}");
        assert!(e.to_string().contains("exp"), "{e}");

        let c = claims(vec![("sub", s("alice")), ("exp", s("tomorrow"))]);
        let e = hs().verify(&hs_token(&c)).unwrap_err();
        assert!(matches!(e, JwtError::NoExpiry), "{e:?}");
    }

    #[test]
    fn nbf_that_is_not_a_number_is_refused() {
        let mut c = good();
        c.insert("nbf", s("soon"));
        let e = hs().verify(&hs_token(&c)).unwrap_err();
        assert!(
            matches!(&e, JwtError::BadTimeClaim(claim) if claim == "nbf"),
            "{e:?}"
        );
        assert!(e.to_string().contains("nbf"), "{e}");
    }

    // --- signatures and algorithms ---

    #[test]
    fn wrong_secret_is_an_invalid_signature() {
        let other = EncodingKey::from_secret(b"another-secret-0123456789-abcdefghij");
        let token = mint(Algorithm::HS256, &other, &good());
        let e = hs().verify(&token).unwrap_err();
        assert!(matches!(e, JwtError::BadSignature), "{e:?}");
        assert!(e.to_string().starts_with("invalid signature"), "{e}");
    }

    #[test]
    fn wrong_public_key_is_an_invalid_signature() {
        let v = with_pem(OTHER_RSA_PUBLIC.as_bytes());
        let e = v.verify(&rs_token(&good())).unwrap_err();
        assert!(matches!(e, JwtError::BadSignature), "{e:?}");

        let v = with_pem(OTHER_P256_PUBLIC.as_bytes());
        let e = v.verify(&es_token(&good())).unwrap_err();
        assert!(matches!(e, JwtError::BadSignature), "{e:?}");
    }

    #[test]
    fn tampered_claims_are_an_invalid_signature() {
        let token = hs_token(&good());
        let forged = hs_token(&claims(vec![
            ("sub", s("admin")),
            ("exp", V::N(now() + 600)),
        ]));
        let parts: Vec<&str> = token.split('.').collect();
        let forged_parts: Vec<&str> = forged.split('.').collect();
        let spliced = format!("{}.{}.{}", parts[0], forged_parts[1], parts[2]);
        let e = hs().verify(&spliced).unwrap_err();
        assert!(matches!(e, JwtError::BadSignature), "{e:?}");
    }

    #[test]
    fn hs256_token_signed_with_the_public_key_is_refused_by_an_rs256_gateway() {
        // The classic confusion: the attacker knows the public key and uses it as an HMAC secret.
        let token = mint(
            Algorithm::HS256,
            &EncodingKey::from_secret(RS_PUBLIC),
            &good(),
        );
        let e = with_pem(RS_PUBLIC).verify(&token).unwrap_err();
        match &e {
            JwtError::WrongAlgorithm { found, expected } => {
                assert_eq!(found, "HS256");
                assert_eq!(*expected, JwtAlgorithm::Rs256);
            }
            other => panic!("expected WrongAlgorithm, got {other:?}"),
        }
        assert!(e.to_string().contains("accepts only RS256"), "{e}");
    }

    #[test]
    fn any_other_header_algorithm_is_refused() {
        let hs384 = mint(
            Algorithm::HS384,
            &EncodingKey::from_secret(SECRET.as_bytes()),
            &good(),
        );
        assert!(matches!(
            hs().verify(&hs384),
            Err(JwtError::WrongAlgorithm { .. })
        ));
        // An RS256 token at an ES256 gateway and the other way round.
        let e = with_pem(ES_PUBLIC).verify(&rs_token(&good())).unwrap_err();
        assert!(matches!(e, JwtError::WrongAlgorithm { .. }), "{e:?}");
        let e = with_pem(RS_PUBLIC).verify(&es_token(&good())).unwrap_err();
        assert!(matches!(e, JwtError::WrongAlgorithm { .. }), "{e:?}");
        // An RS256 token at an HS256 gateway.
        let e = hs().verify(&rs_token(&good())).unwrap_err();
        assert!(matches!(e, JwtError::WrongAlgorithm { .. }), "{e:?}");
    }

    #[test]
    fn unsigned_alg_none_token_is_refused() {
        // {"alg":"none","typ":"JWT"} . {"sub":"alice","exp":4102444800} . (no signature)
        let token =
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6NDEwMjQ0NDgwMH0.";
        for v in [hs(), with_pem(RS_PUBLIC), with_pem(ES_PUBLIC)] {
            let e = v.verify(token).unwrap_err();
            assert!(matches!(e, JwtError::Malformed(_)), "{e:?}");
        }
    }

    // --- subject ---

    #[test]
    fn missing_empty_or_null_sub_is_refused() {
        for sub in [None, Some(s("")), Some(V::Null)] {
            let mut c = claims(vec![("exp", V::N(now() + 600))]);
            if let Some(sub) = sub {
                c.insert("sub", sub);
            }
            let e = hs().verify(&hs_token(&c)).unwrap_err();
            assert!(matches!(e, JwtError::NoSubject), "{e:?}");
            assert!(e.to_string().contains("sub"), "{e}");
        }
    }

    #[test]
    fn sub_that_is_not_a_string_is_refused() {
        let mut c = good();
        c.insert("sub", V::N(42));
        let e = hs().verify(&hs_token(&c)).unwrap_err();
        assert!(matches!(e, JwtError::BadSubject(_)), "{e:?}");
        assert!(e.to_string().contains("must be a string"), "{e}");
    }

    #[test]
    fn sub_is_limited_to_128_characters() {
        let mut c = good();
        c.insert("sub", V::S("u".repeat(128)));
        assert_eq!(hs().verify(&hs_token(&c)).unwrap(), "u".repeat(128));

        c.insert("sub", V::S("u".repeat(129)));
        let e = hs().verify(&hs_token(&c)).unwrap_err();
        assert!(matches!(e, JwtError::BadSubject(_)), "{e:?}");
        assert!(e.to_string().contains("128"), "{e}");

        // Characters, not bytes (as every user id limit): 128 two-byte characters pass, 129
        // do not.
        c.insert("sub", V::S("é".repeat(128)));
        assert_eq!(hs().verify(&hs_token(&c)).unwrap(), "é".repeat(128));
        c.insert("sub", V::S("é".repeat(129)));
        assert!(matches!(
            hs().verify(&hs_token(&c)),
            Err(JwtError::BadSubject(_))
        ));
    }

    // --- garbage ---

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let v = hs();
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        for token in [
            "",
            "abc",
            "a.b",
            "a.b.c",
            "a.b.c.d",
            "....",
            "!!!.???.***",
            "bm90IGpzb24.eyJzdWIiOiJhbGljZSJ9.c2ln",
            "\u{0}\u{1}.\u{ff}.é",
            huge.as_str(),
        ] {
            let e = v.verify(token).unwrap_err();
            assert!(matches!(e, JwtError::Malformed(_)), "{token:?}: {e:?}");
            assert!(e.to_string().starts_with("malformed token"), "{e}");
        }
    }

    #[test]
    fn correctly_signed_claims_that_are_not_a_json_object_are_malformed() {
        // {"alg":"HS256"} . "not json"
        let message = "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24";
        let key = EncodingKey::from_secret(SECRET.as_bytes());
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
        let e = hs().verify(&format!("{message}.{signature}")).unwrap_err();
        assert!(matches!(e, JwtError::Malformed(_)), "{e:?}");
        // The same claims with a wrong signature never get parsed.
        let e = hs().verify(&format!("{message}.c2ln")).unwrap_err();
        assert!(matches!(e, JwtError::BadSignature), "{e:?}");
    }

    #[test]
    fn mangled_signatures_are_refused() {
        let cases = [
            (hs(), hs_token(&good())),
            (with_pem(RS_PUBLIC), rs_token(&good())),
            (with_pem(ES_PUBLIC), es_token(&good())),
        ];
        for (v, token) in cases {
            let (signed, _) = token.rsplit_once('.').unwrap();
            for signature in ["", "AAAA", "not*base64"] {
                let e = v.verify(&format!("{signed}.{signature}")).unwrap_err();
                assert!(
                    matches!(e, JwtError::BadSignature | JwtError::Malformed(_)),
                    "{signature:?}: {e:?}"
                );
            }
        }
    }

    #[test]
    fn missing_token_message_says_where_to_put_it() {
        assert_eq!(
            JwtError::Missing.to_string(),
            "missing token: send it as ?token=..., Authorization: Bearer ... or Sec-WebSocket-Protocol: wsgate.jwt, ..."
        );
    }

    // --- configuration ---

    #[test]
    fn debug_does_not_print_the_secret() {
        let shown = format!("{:?}", hs());
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(
            shown.contains("HS256") || shown.contains("Hs256"),
            "{shown}"
        );
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn a_key_is_required_and_only_one() {
        let e = config_error(None, None, None);
        assert!(
            e.contains("--jwt-secret") && e.contains("--jwt-public-key"),
            "{e}"
        );
        let e = config_error(Some(JwtAlgorithm::Rs256), None, None);
        assert!(e.contains("--jwt-public-key"), "{e}");
        let e = config_error(None, Some(SECRET), Some(RS_PUBLIC));
        assert!(e.contains("both set"), "{e}");
    }

    #[test]
    fn short_secret_is_refused() {
        let e = config_error(None, Some("secret"), None);
        assert!(e.contains("--jwt-secret is 6 bytes"), "{e}");
        let e = config_error(None, Some(""), None);
        assert!(e.contains("--jwt-secret is 0 bytes"), "{e}");
        assert!(JwtVerifier::new(None, Some(&"k".repeat(32)), None, leeway()).is_ok());
    }

    #[test]
    fn algorithm_must_match_the_kind_of_key() {
        let e = config_error(Some(JwtAlgorithm::Rs256), Some(SECRET), None);
        assert!(
            e.contains("--jwt-algorithm RS256 needs --jwt-public-key"),
            "{e}"
        );
        let e = config_error(Some(JwtAlgorithm::Es256), Some(SECRET), None);
        assert!(
            e.contains("--jwt-algorithm ES256 needs --jwt-public-key"),
            "{e}"
        );
        let e = config_error(Some(JwtAlgorithm::Hs256), None, Some(RS_PUBLIC));
        assert!(
            e.contains("--jwt-algorithm HS256 needs --jwt-secret"),
            "{e}"
        );
        let e = config_error(Some(JwtAlgorithm::Es256), None, Some(RS_PUBLIC));
        assert!(
            e.contains("--jwt-public-key") && e.contains("for RS256, but --jwt-algorithm is ES256"),
            "{e}"
        );
        let e = config_error(Some(JwtAlgorithm::Rs256), None, Some(ES_PUBLIC));
        assert!(e.contains("for ES256, but --jwt-algorithm is RS256"), "{e}");
    }

    #[test]
    fn private_keys_and_certificates_are_refused_with_a_fix() {
        for pem in [RS_PRIVATE, ES_PRIVATE] {
            let e = config_error(None, None, Some(pem));
            assert!(e.starts_with("--jwt-public-key:"), "{e}");
            assert!(e.contains("private key") && e.contains("-pubout"), "{e}");
        }
        let rsa_private = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let e = config_error(None, None, Some(rsa_private.as_bytes()));
        assert!(e.contains("private key"), "{e}");
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = config_error(None, None, Some(cert.as_bytes()));
        assert!(
            e.contains("certificate") && e.contains("openssl x509"),
            "{e}"
        );
    }

    #[test]
    fn unusable_public_keys_are_refused_at_startup() {
        let cases: [(&[u8], &str); 7] = [
            (b"", "not a PEM public key"),
            (b"hello", "not a PEM public key"),
            (&[0x30, 0x82, 0xff, 0x00, 0xfe], "not a PEM public key"),
            (
                b"-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n",
                "cannot be read",
            ),
            (P384_PUBLIC.as_bytes(), "P-256"),
            (ED25519_PUBLIC.as_bytes(), "Ed25519"),
            (RSA1024_PUBLIC.as_bytes(), "1024 bits"),
        ];
        for (pem, expected) in cases {
            let e = config_error(None, None, Some(pem));
            assert!(e.starts_with("--jwt-public-key:"), "{e}");
            assert!(e.contains(expected), "{expected:?} not in {e}");
        }
    }

    // --- finding the token ---

    fn found(token: &str, subprotocol: Option<&'static str>) -> Option<FoundToken> {
        Some(FoundToken {
            token: token.to_owned(),
            subprotocol,
        })
    }

    #[test]
    fn token_from_the_query_string() {
        assert_eq!(find_token("token=abc", None, None), found("abc", None));
        assert_eq!(find_token("?token=abc", None, None), found("abc", None));
        assert_eq!(
            find_token("a=1&token=x.y.z&b=2", None, None),
            found("x.y.z", None)
        );
        assert_eq!(
            find_token("token=first&token=second", None, None),
            found("first", None)
        );
        assert_eq!(
            find_token("token=&token=second", None, None),
            found("second", None)
        );
        for absent in [
            "",
            "token",
            "token=",
            "tokens=abc",
            "xtoken=abc",
            "a=token=abc",
        ] {
            assert_eq!(find_token(absent, None, None), None, "{absent:?}");
        }
    }

    #[test]
    fn query_token_is_percent_decoded() {
        assert_eq!(
            find_token("token=a%2Eb%2ec", None, None),
            found("a.b.c", None)
        );
        assert_eq!(find_token("to%6Ben=abc", None, None), found("abc", None));
        // '+' stays a plus; a '%' without two hex digits stays as it is.
        assert_eq!(find_token("token=a+b", None, None), found("a+b", None));
        assert_eq!(find_token("token=100%", None, None), found("100%", None));
        assert_eq!(find_token("token=%zz%4", None, None), found("%zz%4", None));
        assert_eq!(find_token("token=%C3%A9", None, None), found("é", None));
        // Invalid UTF-8 is kept (replaced), so the client hears "malformed", not "missing".
        assert_eq!(find_token("token=%FF", None, None), found("\u{fffd}", None));
    }

    #[test]
    fn token_from_the_authorization_header() {
        assert_eq!(find_token("", Some("Bearer abc"), None), found("abc", None));
        assert_eq!(
            find_token("", Some("bearer  abc "), None),
            found("abc", None)
        );
        assert_eq!(
            find_token("", Some("BEARER\tabc"), None),
            found("abc", None)
        );
        for absent in [
            "",
            "Bearer",
            "Bearer   ",
            "Basic dXNlcjpwYXNz",
            "Bearerabc",
            "Token abc",
        ] {
            assert_eq!(find_token("", Some(absent), None), None, "{absent:?}");
        }
    }

    #[test]
    fn token_from_the_websocket_subprotocol() {
        let sp = Some("wsgate.jwt");
        assert_eq!(
            find_token("", None, Some("wsgate.jwt, abc")),
            found("abc", sp)
        );
        assert_eq!(
            find_token("", None, Some("wsgate.jwt,abc")),
            found("abc", sp)
        );
        assert_eq!(
            find_token("", None, Some("abc, wsgate.jwt")),
            found("abc", sp)
        );
        assert_eq!(
            find_token("", None, Some("chat, wsgate.jwt, abc")),
            found("abc", sp)
        );
        assert_eq!(
            find_token("", None, Some("wsgate.jwt, abc, chat")),
            found("abc", sp)
        );
        assert_eq!(
            find_token("", None, Some(" , wsgate.jwt , abc , ")),
            found("abc", sp)
        );
        for absent in [
            "",
            "wsgate.jwt",
            "wsgate.jwt,",
            "wsgate.jwt, wsgate.jwt",
            "chat, abc",
            "WSGATE.JWT, abc",
        ] {
            assert_eq!(find_token("", None, Some(absent)), None, "{absent:?}");
        }
    }

    #[test]
    fn query_wins_over_bearer_which_wins_over_subprotocol() {
        let protocol = Some("wsgate.jwt, from-protocol");
        let bearer = Some("Bearer from-header");
        assert_eq!(
            find_token("token=from-query", bearer, protocol),
            found("from-query", None)
        );
        assert_eq!(find_token("", bearer, protocol), found("from-header", None));
        assert_eq!(
            find_token("other=1", Some("Basic xyz"), protocol),
            found("from-protocol", Some("wsgate.jwt"))
        );
        assert_eq!(find_token("", None, None), None);
    }

    #[test]
    fn found_tokens_verify_end_to_end() {
        let token = hs_token(&good());
        let v = hs();
        let query = format!("token={}", token.replace('.', "%2E"));
        let bearer = format!("Bearer {token}");
        let protocol = format!("wsgate.jwt, {token}");
        for f in [
            find_token(&query, None, None),
            find_token("", Some(&bearer), None),
            find_token("", None, Some(&protocol)),
        ] {
            assert_eq!(v.verify(&f.unwrap().token).unwrap(), "alice");
        }
    }
}
