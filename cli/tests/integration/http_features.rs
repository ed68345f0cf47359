//! The happy paths of the contract over HTTP.

use serde_json::{json, Value as Json};

use crate::server::Server;
use reprise_sdk::SnapshotRequest;

#[test]
fn push_read_online_and_snapshot_over_http() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let c = &server.client;
    let now = chrono::Utc::now();
    let recent = (now - chrono::Duration::hours(1)).to_rfc3339();
    let old = (now - chrono::Duration::days(40)).to_rfc3339();

    let pushed = c
        .push(
            "user_stats",
            &[
                json!({"user_id": "u1", "event_timestamp": recent, "plays_7d": 12, "favourite_genre": "jazz"}),
                json!({"user_id": "u2", "event_timestamp": old, "plays_7d": 3}),
            ],
            false,
        )
        .unwrap();
    assert_eq!(pushed.written, 2);
    assert_eq!(pushed.store_version, server.store_version());

    let online = c
        .online_features(
            &[
                "user_stats:plays_7d",
                "user_stats:plays_7d_log",
                "item_stats:popularity",
            ],
            &[
                json!({"user_id": "u2", "item_id": "i1"}),
                json!({"user_id": "u1", "item_id": "i1"}),
            ],
        )
        .unwrap();
    assert_eq!(
        online.rows[0].statuses,
        ["OUTSIDE_MAX_AGE", "OUTSIDE_MAX_AGE", "NOT_FOUND"],
        "ttl 30d"
    );
    assert_eq!(online.rows[1].statuses, ["PRESENT", "PRESENT", "NOT_FOUND"]);
    assert_eq!(online.rows[1].values[0], json!(12));
    assert_eq!(
        online.rows[1].values[1].as_f64().unwrap().to_bits(),
        13f64.ln().to_bits()
    );
    assert_eq!(online.rows[1].values[2], Json::Null);

    let request = SnapshotRequest {
        features: vec![
            "user_stats:plays_7d".into(),
            "user_stats:favourite_genre_bucket".into(),
        ],
        entity_rows: vec![
            // After the push: with the default created-time cutoff, a row is
            // visible only to entity rows later than the moment it was written.
            json!({"user_id": "u1", "event_timestamp": chrono::Utc::now().to_rfc3339(), "label": 1}),
            json!({"user_id": "u1", "event_timestamp": old, "label": 0}),
        ],
        ..Default::default()
    };
    let created = c.create_snapshot(&request).unwrap();
    assert_eq!(created.rows, 2);
    assert_eq!(
        c.snapshot(&created.snapshot_id).unwrap().store_version,
        created.store_version
    );
    let rows = c.snapshot_rows(&created.snapshot_id).unwrap();
    assert_eq!(rows[0]["user_stats__plays_7d"], json!(12));
    assert_eq!(rows[0]["label"], json!(1));
    assert_eq!(
        rows[1]["user_stats__plays_7d"],
        Json::Null,
        "nothing known 40 days ago"
    );

    let parquet = c.snapshot_parquet(&created.snapshot_id).unwrap();
    assert_eq!(&parquet[..4], b"PAR1");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(parquet),
    )
    .unwrap()
    .build()
    .unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    let plays = batches[0]
        .column_by_name("user_stats__plays_7d")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .unwrap()
        .clone();
    assert_eq!(plays.value(0), 12);
    assert!(arrow_array::Array::is_null(&plays, 1));

    // Operations endpoints.
    assert_eq!(c.get("/healthz").unwrap().0, 200);
    let (status, metrics) = c.get("/metrics").unwrap();
    let metrics = String::from_utf8(metrics).unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            "reprise_http_requests_total{method=\"POST\",route=\"/v1/push\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("reprise_store_version {}", created.store_version)),
        "{metrics}"
    );
}
