//! With `--otlp-endpoint`, request spans are exported over OTLP/HTTP in the
//! caller's trace.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use crate::server::Server;

/// A stand-in OTLP/HTTP collector: answers every POST with 200 and hands
/// the bodies over.
fn collector() -> (String, mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                let _ = tx.send(body);
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, rx)
}

#[test]
fn spans_are_exported_over_otlp_in_the_callers_trace() {
    let (endpoint, bodies) = collector();
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
