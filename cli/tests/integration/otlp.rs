//! With `--otlp-endpoint`, request spans are exported over OTLP/HTTP in the
//! caller's trace.

use std::time::Duration;

use crate::server::{http_sink, Server};

#[test]
fn spans_are_exported_over_otlp_in_the_callers_trace() {
    let (endpoint, bodies) = http_sink("/v1/traces");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--otlp-endpoint", &endpoint]);
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .get(format!("{}/healthz", server.url))
        .header("traceparent", format!("00-{trace_id}-b7ad6b7169203331-01"))
        .call()
        .unwrap();
    assert_eq!(
        response
            .headers()
            .get("x-trace-id")
            .unwrap()
            .to_str()
            .unwrap(),
        trace_id
    );

    // The protobuf body carries the trace id as 16 raw bytes.
    let raw: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let remaining = deadline.saturating_duration_since(std::time::Instant::now());
        let body = bodies
            .recv_timeout(remaining)
            .expect("no OTLP export within 20 s");
        if body.windows(16).any(|w| w == raw.as_slice()) {
            break;
        }
    }
}
