//! `POST /v1/snapshots`, `GET /v1/snapshots/{id}`, `GET /v1/snapshots/{id}/rows`.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use reprise_actors::CreateSnapshot;
use reprise_store::time::format_rfc3339;
use reprise_store::{Cutoff, SnapshotInfo, SnapshotSpec};
use serde::Deserialize;

use crate::body::json_object;
use crate::error::ApiError;
use crate::routes::blocking;
use crate::schema::{ErrorResponse, SnapshotDescription, SnapshotRequest};
use crate::state::AppState;
use crate::streaming;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/snapshots", web::post().to(create))
        .route("/v1/snapshots/{id}", web::get().to(info))
        .route("/v1/snapshots/{id}/rows", web::get().to(rows));
}

fn describe(info: SnapshotInfo) -> SnapshotDescription {
    SnapshotDescription {
        snapshot_id: info.id,
        store_version: info.store_version,
        rows: info.rows,
        created_at: format_rfc3339(info.created_at),
        cutoff: info.cutoff,
        features: info.features,
        columns: info.columns,
    }
}

/// Create a point-in-time snapshot (training data) pinned to a store version.
#[utoipa::path(post, path = "/v1/snapshots", operation_id = "create_snapshot", tag = "snapshots", request_body = SnapshotRequest,
    responses((status = 201, body = SnapshotDescription),
              (status = 400, description = "Unknown feature, missing key or timestamp, bad cutoff or version", body = ErrorResponse)))]
pub(crate) async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let mut body = json_object(&req, payload, &state.limits).await?;
    let features = body.strings("features")?;
    let as_of_version = body.optional_u64("as_of_version")?;
    let cutoff = match body.optional_string("cutoff")? {
        None => Cutoff::default(),
        Some(text) => Cutoff::parse(&text).ok_or_else(|| {
            ApiError::bad_field(
                "cutoff",
                format!("cutoff `{text}` is not `created` or `event`"),
            )
        })?,
    };
    let entity_rows = body.array("entity_rows")?;
    // A user's snapshot: no owner, never collected.
    let spec = SnapshotSpec {
        features,
        as_of_version,
        cutoff,
        owner: String::new(),
    };
    let info = state
        .workers
        .send(CreateSnapshot { spec, entity_rows })
        .await?;
    Ok(HttpResponse::Created().json(describe(info)))
}

/// Metadata of a snapshot.
#[utoipa::path(get, path = "/v1/snapshots/{id}", operation_id = "get_snapshot", tag = "snapshots",
    params(("id" = String, Path, description = "Snapshot id")),
    responses((status = 200, body = SnapshotDescription), (status = 404, body = ErrorResponse)))]
pub(crate) async fn info(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let store = std::sync::Arc::clone(&state.store);
    let info = blocking(move || store.snapshot_info(&id)).await?;
    Ok(HttpResponse::Ok().json(describe(info)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RowsQuery {
    /// `jsonl` (default) or `parquet`.
    format: Option<String>,
}

enum Format {
    Jsonl,
    Parquet,
}

/// The snapshot's rows, streamed: join keys, `event_timestamp`, passthrough, then one column per feature.
#[utoipa::path(get, path = "/v1/snapshots/{id}/rows", operation_id = "get_snapshot_rows", tag = "snapshots",
    params(("id" = String, Path, description = "Snapshot id"), RowsQuery),
    responses((status = 200, description = "JSON lines (format=jsonl), or a Parquet file (format=parquet, application/vnd.apache.parquet)", content_type = "application/x-ndjson"),
              (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub(crate) async fn rows(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<RowsQuery>,
) -> Result<HttpResponse, ApiError> {
    let format = match query.format.as_deref() {
        None | Some("jsonl") => Format::Jsonl,
        Some("parquet") => Format::Parquet,
        Some(other) => {
            return Err(ApiError::bad_field(
                "format",
                format!("format `{other}` is not `jsonl` or `parquet`"),
            ))
        }
    };
    let id = id.into_inner();
    // Fail with a proper status before the stream starts.
    let store = std::sync::Arc::clone(&state.store);
    let known = id.clone();
    blocking(move || store.snapshot_meta(&known)).await?;
    let (writer, body) = streaming::channel();
    let store = std::sync::Arc::clone(&state.store);
    let (content_type, file_name) = match format {
        Format::Jsonl => ("application/x-ndjson", format!("{id}.jsonl")),
        Format::Parquet => ("application/vnd.apache.parquet", format!("{id}.parquet")),
    };
    let span = tracing::Span::current();
    actix_web::rt::task::spawn_blocking(move || {
        let _entered = span.enter();
        let mut writer = writer;
        let result = match format {
            Format::Jsonl => store.write_snapshot_jsonl(&id, &mut writer),
            Format::Parquet => store.write_snapshot_parquet(&id, &mut writer),
        };
        if let Err(e) = result {
            tracing::warn!(snapshot = %id, error = %e, "snapshot download stopped");
            writer.fail(e.to_string());
        }
    });
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file_name}\""),
        ))
        .streaming(body))
}
