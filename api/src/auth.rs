//! The optional API key: when the server has one (`--api-key`,
//! `REPRISE_API_KEY`), every request must carry it in `x-api-key` except
//! the short list of open routes (health, readiness, metrics, the OpenAPI
//! document).
//!
//! Deny by default: the decision is made on the path exactly as the router
//! matches it (percent-decoded and re-quoted by actix's `Url`), never on the
//! raw request target, and anything that is not literally an open route —
//! including unknown paths, doubled slashes, dot segments and case variants —
//! needs the key.

/// The header the key travels in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The routes anyone may call, as the router sees their path.
pub const OPEN_ROUTES: &[&str] = &["/healthz", "/readyz", "/metrics", "/openapi.json"];

/// Whether a request whose routed path is `routed_path` (the router's view:
/// `ServiceRequest::match_info().as_str()`) and whose key header is `given`
/// may pass.
pub fn allowed(expected: Option<&str>, routed_path: &str, given: Option<&[u8]>) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    if OPEN_ROUTES.contains(&routed_path) {
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
    fn only_open_routes_pass_without_the_key_and_only_the_exact_key_passes() {
        assert!(allowed(None, "/v1/push", None));
        assert!(allowed(Some("k1"), "/healthz", None));
        assert!(allowed(Some("k1"), "/metrics", None));
        assert!(allowed(Some("k1"), "/v1/push", Some(b"k1")));
        assert!(!allowed(Some("k1"), "/v1/push", None));
        assert!(!allowed(Some("k1"), "/v1/push", Some(b"k2")));
        assert!(!allowed(Some("k1"), "/v1/push", Some(b"k1 ")));
        // Deny by default: what is not literally open needs the key.
        for path in [
            "/",
            "/v2/push",
            "//healthz",
            "/healthz/",
            "/HEALTHZ",
            "/x/../v1/push",
        ] {
            assert!(!allowed(Some("k1"), path, None), "{path}");
        }
    }
}
