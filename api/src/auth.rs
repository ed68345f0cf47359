//! The optional API key: when the server has one (`--api-key`,
//! `REPRISE_API_KEY`), every `/v1/…` request must carry it in `x-api-key`;
//! health, readiness, metrics and the OpenAPI document stay open.

/// The header the key travels in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Whether a request for `path` with header value `given` may pass.
pub fn allowed(expected: Option<&str>, path: &str, given: Option<&[u8]>) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    if !path.starts_with("/v1/") {
        return true;
    }
    given.is_some_and(|given| constant_time_eq(given, expected.as_bytes()))
}

/// Compares without stopping at the first difference (the length is not
/// hidden).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_v1_routes_need_the_key_and_only_the_exact_key_passes() {
        assert!(allowed(None, "/v1/push", None));
        assert!(allowed(Some("k1"), "/healthz", None));
        assert!(allowed(Some("k1"), "/metrics", None));
        assert!(allowed(Some("k1"), "/v1/push", Some(b"k1")));
        assert!(!allowed(Some("k1"), "/v1/push", None));
        assert!(!allowed(Some("k1"), "/v1/push", Some(b"k2")));
        assert!(!allowed(Some("k1"), "/v1/push", Some(b"k1 ")));
    }
}
