//! Reading request bodies: bounded in size, parsed as JSON, with top-level
//! fields taken out one by one so a bad one is named in the error.

use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use serde_json::{Map, Value as Json};

use crate::error::ApiError;
use crate::limits::Limits;

/// Reads the whole body (at most `limits.max_body_bytes`), parses it as a
/// JSON object and checks it against the other `limits`.
pub async fn json_object(
    req: &HttpRequest,
    payload: web::Payload,
    limits: &Limits,
) -> Result<JsonObject, ApiError> {
    // The body's bytes stay counted until it is parsed.
    let (bytes, _held) = read_body(req, payload, limits).await?;
    parse_object(&bytes, limits)
}

/// A body already read, parsed as a JSON object and checked against
/// `limits`.
pub fn parse_object(bytes: &[u8], limits: &Limits) -> Result<JsonObject, ApiError> {
    match serde_json::from_slice::<Json>(bytes) {
        Ok(Json::Object(map)) => {
            limits.check(&map)?;
            Ok(JsonObject(map))
        }
        Ok(_) => Err(ApiError::MalformedJson(
            "the body must be a JSON object".into(),
        )),
        Err(e) => Err(ApiError::MalformedJson(e.to_string())),
    }
}

/// Reads the whole body, at most `limits.max_body_bytes`, with the hold on
/// the in-flight budget its bytes take (released when dropped).
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limits: &Limits,
) -> Result<(web::Bytes, Option<crate::limits::BodyBytes>), ApiError> {
    let limit = limits.max_body_bytes;
    // Every body being read counts against one budget for all requests,
    // so maximal bodies sent at full speed
    // cannot take the memory: over it, 503 overloaded.
    let mut held = req
        .app_data::<web::Data<crate::limits::Admission>>()
        .map(|admission| admission.clone().into_inner().body());
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut bytes = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::Transport(e.to_string()))?;
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        if let Some(held) = held.as_mut() {
            held.grow(chunk.len(), limits)?;
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((bytes.freeze(), held))
}

/// A request body as a JSON object.
pub struct JsonObject(pub Map<String, Json>);

impl JsonObject {
    pub fn take(&mut self, field: &str) -> Option<Json> {
        self.0.remove(field).filter(|v| !v.is_null())
    }

    pub fn string(&mut self, field: &str) -> Result<String, ApiError> {
        match self.take(field) {
            Some(Json::String(s)) => Ok(s),
            Some(_) => Err(ApiError::bad_field(
                field,
                format!("`{field}` must be a string"),
            )),
            None => Err(missing(field)),
        }
    }

    pub fn array(&mut self, field: &str) -> Result<Vec<Json>, ApiError> {
        match self.take(field) {
            Some(Json::Array(items)) => Ok(items),
            Some(_) => Err(ApiError::bad_field(
                field,
                format!("`{field}` must be an array"),
            )),
            None => Err(missing(field)),
        }
    }

    pub fn strings(&mut self, field: &str) -> Result<Vec<String>, ApiError> {
        self.array(field)?
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Json::String(s) => Ok(s),
                _ => Err(ApiError::bad_field(
                    format!("{field}[{i}]"),
                    format!("`{field}` must hold strings"),
                )),
            })
            .collect()
    }

    pub fn objects(&mut self, field: &str) -> Result<Vec<Map<String, Json>>, ApiError> {
        self.array(field)?
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Json::Object(map) => Ok(map),
                _ => Err(ApiError::bad_field(
                    format!("{field}[{i}]"),
                    format!("`{field}` must hold objects"),
                )),
            })
            .collect()
    }

    pub fn optional_bool(&mut self, field: &str) -> Result<Option<bool>, ApiError> {
        match self.take(field) {
            None => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(ApiError::bad_field(
                field,
                format!("`{field}` must be true or false"),
            )),
        }
    }

    pub fn optional_u64(&mut self, field: &str) -> Result<Option<u64>, ApiError> {
        match self.take(field) {
            None => Ok(None),
            Some(Json::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
            Some(_) => Err(ApiError::bad_field(
                field,
                format!("`{field}` must be a non-negative integer"),
            )),
        }
    }

    pub fn optional_string(&mut self, field: &str) -> Result<Option<String>, ApiError> {
        match self.take(field) {
            None => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::bad_field(
                field,
                format!("`{field}` must be a string"),
            )),
        }
    }
}

fn missing(field: &str) -> ApiError {
    ApiError::bad_field(field, format!("missing required field `{field}`"))
}
