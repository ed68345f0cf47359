//! What a fleet's processes say to each other beyond the public API: a
//! replica sends the served-feature log of each recommendation it answered
//! to its leader (`POST /internal/v1/served-log`), which writes it (it owns
//! the store), so feedback on those items finds their rows.
//!
//! The route takes no API key: the replica signs the body with HMAC-SHA256
//! under a secret both derive from the keys file they share
//! ([`crate::auth::KeyRing::fleet_secret`]), so a client's key, whatever
//! its scopes, cannot write served-log rows. Without a keys file (no access
//! control) the route is open like every other.

use actix_web::{web, HttpRequest, HttpResponse};
use reprise_actors::recommend::forwarded::ForwardedLog;

use crate::error::ApiError;
use crate::state::AppState;

/// Where a leader takes the served-feature logs of its replicas.
pub const SERVED_LOG_PATH: &str = "/internal/v1/served-log";

/// The header carrying a fleet request's signature (hex).
pub const SIGNATURE_HEADER: &str = "x-reprise-fleet-signature";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(SERVED_LOG_PATH, web::post().to(served_log));
}

/// HMAC-SHA256 of `message` under `key` (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The signature header's value for `body`.
pub fn sign(secret: &[u8; 32], body: &[u8]) -> String {
    hex(&hmac_sha256(secret, body))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `signature` (hex) signs `body` under `secret`, compared in
/// constant time.
fn signed(secret: &[u8; 32], body: &[u8], signature: &[u8]) -> bool {
    let expected = sign(secret, body);
    expected.len() == signature.len()
        && expected
            .bytes()
            .zip(signature)
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn served_log(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (body, _held) = crate::body::read_body(&req, payload, &state.limits).await?;
    if let Some(keys) = &state.keys {
        let signature = req
            .headers()
            .get(SIGNATURE_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !signed(&keys.fleet_secret(), &body, signature) {
            return Err(ApiError::Unauthorized);
        }
    }
    let log: ForwardedLog = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_field("body", format!("not a served-feature log: {e}")))?;
    state.recommender.log_forwarded(log).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn only_the_body_signed_passes() {
        let secret = [7u8; 32];
        let signature = sign(&secret, b"{\"a\":1}");
        assert!(signed(&secret, b"{\"a\":1}", signature.as_bytes()));
        assert!(!signed(&secret, b"{\"a\":2}", signature.as_bytes()));
        assert!(!signed(&[8u8; 32], b"{\"a\":1}", signature.as_bytes()));
        assert!(!signed(&secret, b"{\"a\":1}", b""));
    }
}
