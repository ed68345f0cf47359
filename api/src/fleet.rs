//! What a fleet's processes say to each other beyond the public API: a
//! replica sends the served-feature log of each recommendation it answered
//! to its leader (`POST /internal/v1/served-log`), which writes it (it owns
//! the store), so feedback on those items finds their rows.
//!
//! The route takes no API key: the replica signs the timestamp and the body
//! with HMAC-SHA256 under the fleet's own secret (`--fleet-secret-file`,
//! the same file on every process; clients never see it), and the leader
//! refuses a request more than a minute old or signed otherwise, checking
//! the headers before it reads the body. With access control on (a keys
//! file) and no fleet secret, the route refuses everything and replicas
//! leave recommendations to the leader; with neither (loopback only), it is
//! open like every other route.

use actix_web::{web, HttpRequest, HttpResponse};
use reprise_actors::recommend::forwarded::ForwardedLog;

use crate::error::ApiError;
use crate::state::AppState;

/// Where a leader takes the served-feature logs of its replicas.
pub const SERVED_LOG_PATH: &str = "/internal/v1/served-log";

/// The header carrying a fleet request's signature (hex).
pub const SIGNATURE_HEADER: &str = "x-reprise-fleet-signature";

/// The header carrying when the request was signed (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "x-reprise-fleet-timestamp";

/// How far a signed request's time may be from the leader's clock.
const MAX_SKEW_SECONDS: i64 = 60;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(SERVED_LOG_PATH, web::post().to(served_log));
}

/// The fleet secret in a file (`--fleet-secret-file`): its trimmed
/// contents, at least 16 bytes, hashed to 32.
pub fn secret_from_file(path: &std::path::Path) -> Result<[u8; 32], String> {
    use sha2::{Digest, Sha256};
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let trimmed = text.trim_ascii();
    if trimmed.len() < 16 {
        return Err(format!(
            "{}: a fleet secret needs at least 16 bytes (e.g. `openssl rand -hex 32`)",
            path.display()
        ));
    }
    Ok(Sha256::digest(trimmed).into())
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

/// The signature of `body` sent at `timestamp` (Unix seconds), as the
/// signature header carries it.
pub fn sign(secret: &[u8; 32], timestamp: i64, body: &[u8]) -> String {
    hex(&hmac_sha256(secret, &signed_message(timestamp, body)))
}

fn signed_message(timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut message = format!("{timestamp}\n").into_bytes();
    message.extend_from_slice(body);
    message
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `signature` (hex) signs `body` at `timestamp` under `secret`,
/// compared in constant time.
fn signed(secret: &[u8; 32], timestamp: i64, body: &[u8], signature: &[u8]) -> bool {
    let expected = sign(secret, timestamp, body);
    expected.len() == signature.len()
        && expected
            .bytes()
            .zip(signature)
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The current Unix time in seconds.
pub fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The signed request's time and signature, if its headers are well formed
/// and its time is near the leader's.
fn signature_headers(req: &HttpRequest) -> Option<(i64, Vec<u8>)> {
    let header = |name: &str| req.headers().get(name).map(|v| v.as_bytes());
    let timestamp: i64 = std::str::from_utf8(header(TIMESTAMP_HEADER)?)
        .ok()?
        .parse()
        .ok()?;
    let signature = header(SIGNATURE_HEADER)?;
    ((now_seconds() - timestamp).abs() <= MAX_SKEW_SECONDS && signature.len() == 64)
        .then(|| (timestamp, signature.to_vec()))
}

async fn served_log(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // Checked before the body is read: an unsigned caller holds no part of
    // the body budget.
    let signature = match (&state.fleet_secret, &state.keys) {
        (Some(secret), _) => Some((
            *secret,
            signature_headers(&req).ok_or(ApiError::Unauthorized)?,
        )),
        (None, Some(_)) => return Err(ApiError::Unauthorized),
        (None, None) => None,
    };
    let (body, _held) = crate::body::read_body(&req, payload, &state.limits).await?;
    if let Some((secret, (timestamp, signature))) = signature {
        if !signed(&secret, timestamp, &body, &signature) {
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
    fn only_the_body_signed_at_its_time_passes() {
        let secret = [7u8; 32];
        let signature = sign(&secret, 100, b"{\"a\":1}");
        assert!(signed(&secret, 100, b"{\"a\":1}", signature.as_bytes()));
        assert!(!signed(&secret, 100, b"{\"a\":2}", signature.as_bytes()));
        assert!(!signed(&secret, 101, b"{\"a\":1}", signature.as_bytes()));
        assert!(!signed(&[8u8; 32], 100, b"{\"a\":1}", signature.as_bytes()));
        assert!(!signed(&secret, 100, b"{\"a\":1}", b""));
    }
}
