//! `/metrics` is Prometheus text and moves when requests are served.

use actix_web::test;

use crate::common::state;

/// Checks the text exposition format line by line; returns (series, value).
fn parse(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            let kind = comment.split_whitespace().next().unwrap_or("");
            assert!(["HELP", "TYPE"].contains(&kind), "bad comment line: {line}");
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "bad labels: {line}");
        }
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        samples.push((series.to_owned(), value));
    }
    samples
}

fn value(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .map_or(0.0, |(_, v)| *v)
}

/// Scrapes `/metrics` of a test service.
macro_rules! scrape {
    ($app:expr) => {{
        let response =
            test::call_service($app, test::TestRequest::get().uri("/metrics").to_request()).await;
        assert_eq!(response.status(), 200);
        parse(std::str::from_utf8(&test::read_body(response).await).unwrap())
    }};
}

#[actix_rt::test]
async fn metrics_parse_and_move_with_traffic() {
    let app = test::init_service(reprise_api::app(state())).await;
    let before = scrape!(&app);
    let online =
        r#"reprise_http_requests_total{method="POST",route="/v1/online-features",status="200"}"#;
    assert_eq!(value(&before, online), 0.0);
    for _ in 0..3 {
        let request = test::TestRequest::post()
            .uri("/v1/online-features")
            .set_json(serde_json::json!({"features": ["user_stats:plays"], "entities": [{"user_id": "u1"}]}))
            .to_request();
        assert_eq!(test::call_service(&app, request).await.status(), 200);
    }
    let after = scrape!(&app);
    assert_eq!(value(&after, online), 3.0);
    assert_eq!(
        value(&after, "reprise_store_version"),
        2.0,
        "one migration and one push"
    );
    // Every read tries the cache on the HTTP worker first; misses read
    // RocksDB on the blocking pool.
    let cached = value(
        &after,
        r#"reprise_store_operation_duration_seconds_count{operation="online_read_cached"}"#,
    );
    assert_eq!(cached, 3.0);
    assert!(
        value(
            &after,
            r#"reprise_store_operation_duration_seconds_count{operation="online_read"}"#
        ) >= 1.0,
        "the first read misses"
    );
    assert!(value(&after, "reprise_online_cache_hits_total") >= 2.0);
    assert!(value(&after, "reprise_online_cache_hit_ratio") > 0.0);
    assert_eq!(
        value(&after, "reprise_online_cache_entries"),
        1.0,
        "one user read, one row cached"
    );
    let latency =
        r#"reprise_http_request_duration_seconds_count{method="POST",route="/v1/online-features"}"#;
    assert_eq!(value(&after, latency), 3.0);
}
