//! JWT checks at the handshake, with real signed tokens (HS256, RS256, ES256) and real clients.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SECRET: &str = "test-secret-of-reasonable-length";
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

#[derive(serde::Serialize)]
struct Claims<'a> {
    sub: &'a str,
    exp: u64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn hs256(sub: &str, exp: u64, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &Claims { sub, exp },
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

fn signed_with_pem(alg: Algorithm, pem_file: &str, sub: &str) -> String {
    let pem = std::fs::read(format!("{DATA}/{pem_file}")).expect("test key");
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        _ => EncodingKey::from_ec_pem(&pem),
    }
    .expect("key parses");
    jsonwebtoken::encode(
        &Header::new(alg),
        &Claims {
            sub,
            exp: now() + 60,
        },
        &key,
    )
    .expect("sign")
}

#[tokio::test]
async fn hs256_tokens_from_every_place_bind_the_subject() {
    let gw = TestGateway::start_with(|c| c.jwt_secret = Some(SECRET.into())).await;
    let (_client, mut events) = gw.business("jwt").await;

    // Query string.
    let _a = connect(&format!(
        "{}?token={}",
        gw.url(),
        hs256("ann", now() + 60, SECRET)
    ))
    .await;
    assert_eq!(events.open().await.user_id, "ann");

    // Authorization header.
    let mut req = gw.url().into_client_request().unwrap();
    let bearer = format!("Bearer {}", hs256("ben", now() + 60, SECRET));
    req.headers_mut()
        .insert("authorization", bearer.parse().unwrap());
    let (_b, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(events.open().await.user_id, "ben");

    // Subprotocol, as a browser sends it; the gateway must answer with wsgate.jwt.
    let mut req = gw.url().into_client_request().unwrap();
    let offer = format!("wsgate.jwt, {}", hs256("cat", now() + 60, SECRET));
    req.headers_mut()
        .insert("sec-websocket-protocol", offer.parse().unwrap());
    let (_c, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .map(|v| v.as_bytes()),
        Some(&b"wsgate.jwt"[..])
    );
    assert_eq!(events.open().await.user_id, "cat");
    gw.stop().await;
}

#[tokio::test]
async fn missing_expired_and_forged_tokens_get_401_with_the_reason() {
    let gw = TestGateway::start_with(|c| {
        c.jwt_secret = Some(SECRET.into());
        c.jwt_leeway = Duration::ZERO;
    })
    .await;
    let body = refused(gw.url().into_client_request().unwrap(), 401).await;
    assert!(
        body.contains("token="),
        "says where to put the token: {body}"
    );

    let expired = hs256("ann", now() - 120, SECRET);
    let url = format!("{}?token={expired}", gw.url());
    let body = refused(url.into_client_request().unwrap(), 401).await;
    assert!(body.contains("expired"), "{body}");

    let forged = hs256("ann", now() + 60, "not-the-secret-at-all-not-at-all");
    let url = format!("{}?token={forged}", gw.url());
    let body = refused(url.into_client_request().unwrap(), 401).await;
    assert!(body.to_lowercase().contains("signature"), "{body}");

    let url = format!("{}?token=garbage", gw.url());
    refused(url.into_client_request().unwrap(), 401).await;
    assert_eq!(
        gw.stat(|s| &s.connections_total),
        0,
        "no refused client got a connection"
    );
    gw.stop().await;
}

#[tokio::test]
async fn rs256_and_es256_public_keys_verify_and_reject_algorithm_confusion() {
    for (alg, private, public) in [
        (
            Algorithm::RS256,
            "jwt-rs256-private.pem",
            "jwt-rs256-public.pem",
        ),
        (
            Algorithm::ES256,
            "jwt-es256-private.pem",
            "jwt-es256-public.pem",
        ),
    ] {
        let gw =
            TestGateway::start_with(|c| c.jwt_public_key = Some(format!("{DATA}/{public}").into()))
                .await;
        let (_client, mut events) = gw.business("jwt").await;
        let token = signed_with_pem(alg, private, "dora");
        let _ws = connect(&format!("{}?token={token}", gw.url())).await;
        assert_eq!(events.open().await.user_id, "dora", "{alg:?}");

        // An HS256 token "signed" with the public key must not pass.
        let pem = std::fs::read_to_string(format!("{DATA}/{public}")).unwrap();
        let confused = hs256("mallory", now() + 60, &pem);
        let url = format!("{}?token={confused}", gw.url());
        refused(url.into_client_request().unwrap(), 401).await;
        gw.stop().await;
    }
}
