//! Bounds on every request (CONTRACT.md, "Limits and overload"): body
//! bytes (413), then, once parsed, the items of each top-level list, the
//! length of strings and of nested arrays (vectors, string lists) and the
//! nesting depth (400 `limit_exceeded`, naming the field and the limit);
//! and admission control: requests in flight per route class, over which a
//! request is answered 503 `overloaded` with `Retry-After` before its body
//! is read.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value as Json;

use crate::auth::Scope;
use crate::error::ApiError;

/// Every bound; the command line sets each (`reprise serve --help`).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// Rows of one push.
    pub max_rows: usize,
    /// Entities of one online read, items of one rank request.
    pub max_entities: usize,
    /// Events of one request.
    pub max_events: usize,
    /// Entity rows of one snapshot.
    pub max_snapshot_rows: usize,
    /// Bytes of any string (ids, feature values).
    pub max_string_bytes: usize,
    /// Items of any nested array (a vector's dimension, a string list).
    pub max_array_items: usize,
    /// Nesting depth of the body.
    pub max_depth: usize,
    /// Requests in flight per route class (read, write, admin).
    pub max_in_flight: [usize; 3],
    /// Bytes of request bodies being read or parsed at once, all requests
    /// together: what bounds the memory maximal bodies can take.
    pub max_body_bytes_in_flight: usize,
    /// How long a handler may take to answer (the response head; a
    /// streamed body may take longer).
    pub request_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 << 20,
            max_rows: 100_000,
            max_entities: 10_000,
            max_events: 10_000,
            max_snapshot_rows: 1_000_000,
            max_string_bytes: 64 << 10,
            max_array_items: 65_536,
            max_depth: 32,
            max_in_flight: [256, 32, 8],
            max_body_bytes_in_flight: 256 << 20,
            request_timeout: std::time::Duration::from_secs(300),
        }
    }
}

impl Limits {
    /// The bound of top-level list `field`, and the flag that sets it.
    fn list_limit(&self, field: &str) -> (usize, &'static str) {
        match field {
            "rows" => (self.max_rows, "--max-rows"),
            "entities" | "item_ids" => (self.max_entities, "--max-entities"),
            "events" => (self.max_events, "--max-events"),
            "entity_rows" => (self.max_snapshot_rows, "--max-snapshot-rows"),
            _ => (self.max_array_items, "--max-array-items"),
        }
    }

    /// Checks a parsed body against the bounds.
    pub fn check(&self, body: &serde_json::Map<String, Json>) -> Result<(), ApiError> {
        for (field, value) in body {
            match value {
                Json::Array(items) => {
                    let (limit, flag) = self.list_limit(field);
                    if items.len() > limit {
                        return Err(exceeded(field.clone(), items.len(), limit, flag));
                    }
                    for (i, item) in items.iter().enumerate() {
                        self.check_value(item, &|| format!("{field}[{i}]"), 1)?;
                    }
                }
                other => self.check_value(other, &|| field.clone(), 1)?,
            }
        }
        Ok(())
    }

    fn check_value(
        &self,
        value: &Json,
        path: &dyn Fn() -> String,
        depth: usize,
    ) -> Result<(), ApiError> {
        if depth > self.max_depth {
            return Err(exceeded(path(), depth, self.max_depth, "--max-depth"));
        }
        match value {
            Json::String(s) if s.len() > self.max_string_bytes => Err(exceeded(
                path(),
                s.len(),
                self.max_string_bytes,
                "--max-string-bytes",
            )),
            Json::Array(items) => {
                if items.len() > self.max_array_items {
                    return Err(exceeded(
                        path(),
                        items.len(),
                        self.max_array_items,
                        "--max-array-items",
                    ));
                }
                for (i, item) in items.iter().enumerate() {
                    self.check_value(item, &|| format!("{}[{i}]", path()), depth + 1)?;
                }
                Ok(())
            }
            Json::Object(map) => {
                for (key, item) in map {
                    if key.len() > self.max_string_bytes {
                        return Err(exceeded(
                            format!("{}.{key}", path()),
                            key.len(),
                            self.max_string_bytes,
                            "--max-string-bytes",
                        ));
                    }
                    self.check_value(item, &|| format!("{}.{key}", path()), depth + 1)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn exceeded(field: String, got: usize, limit: usize, flag: &'static str) -> ApiError {
    ApiError::LimitExceeded {
        field,
        got,
        limit,
        flag,
    }
}

/// Requests in flight per route class, and body bytes in flight.
#[derive(Debug, Default)]
pub struct Admission {
    in_flight: [AtomicUsize; 3],
    body_bytes: AtomicUsize,
}

/// Body bytes held by one request; given back when dropped.
pub struct BodyBytes {
    admission: Arc<Admission>,
    held: usize,
}

impl BodyBytes {
    /// Holds `more` bytes, or says the server is overloaded.
    pub fn grow(&mut self, more: usize, limits: &Limits) -> Result<(), ApiError> {
        let before = self.admission.body_bytes.fetch_add(more, Ordering::AcqRel);
        if before + more > limits.max_body_bytes_in_flight {
            self.admission.body_bytes.fetch_sub(more, Ordering::AcqRel);
            return Err(ApiError::BodyBudget {
                limit: limits.max_body_bytes_in_flight,
            });
        }
        self.held += more;
        Ok(())
    }
}

impl Drop for BodyBytes {
    fn drop(&mut self) {
        self.admission
            .body_bytes
            .fetch_sub(self.held, Ordering::AcqRel);
    }
}

/// A request admitted; it leaves when dropped.
pub struct Admitted {
    admission: Arc<Admission>,
    class: usize,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.admission.in_flight[self.class].fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    /// A holder of body bytes (none yet).
    pub fn body(self: &Arc<Self>) -> BodyBytes {
        BodyBytes {
            admission: Arc::clone(self),
            held: 0,
        }
    }

    /// Admits a request of route class `scope`, or says it is overloaded.
    pub fn admit(self: &Arc<Self>, scope: Scope, limits: &Limits) -> Result<Admitted, ApiError> {
        let class = scope as usize;
        let capacity = limits.max_in_flight[class];
        if self.in_flight[class].fetch_add(1, Ordering::AcqRel) >= capacity {
            self.in_flight[class].fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::Actor(reprise_actors::ActorError::Overloaded {
                actor: match scope {
                    Scope::Read => "read request",
                    Scope::Write => "write request",
                    Scope::Admin => "admin request",
                },
                capacity,
            }));
        }
        Ok(Admitted {
            admission: Arc::clone(self),
            class,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits() -> Limits {
        Limits {
            max_rows: 2,
            max_string_bytes: 8,
            max_array_items: 3,
            max_depth: 4,
            ..Limits::default()
        }
    }

    fn field_of(body: Json) -> Option<String> {
        match limits().check(body.as_object().unwrap()) {
            Ok(()) => None,
            Err(ApiError::LimitExceeded { field, .. }) => Some(field),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn each_bound_names_the_field() {
        assert_eq!(field_of(json!({"rows": [{}, {}]})), None);
        assert_eq!(field_of(json!({"rows": [{}, {}, {}]})), Some("rows".into()));
        assert_eq!(
            field_of(json!({"rows": [{"user_id": "much too long"}]})),
            Some("rows[0].user_id".into())
        );
        assert_eq!(
            field_of(json!({"rows": [{"v": [1, 2, 3, 4]}]})),
            Some("rows[0].v".into())
        );
        assert_eq!(
            field_of(json!({"a": {"b": {"c": {"d": {"e": 1}}}}})),
            Some("a.b.c.d.e".into())
        );
        assert_eq!(field_of(json!({"view": "ok"})), None);
    }

    #[test]
    fn admission_is_bounded_per_class_and_released() {
        let admission = Arc::new(Admission::default());
        let limits = Limits {
            max_in_flight: [1, 1, 1],
            ..Limits::default()
        };
        let first = admission.admit(Scope::Write, &limits).unwrap();
        assert!(admission.admit(Scope::Write, &limits).is_err());
        let _read = admission.admit(Scope::Read, &limits).unwrap();
        drop(first);
        assert!(admission.admit(Scope::Write, &limits).is_ok());
        // Body bytes: bounded across requests, given back on drop.
        let limits = Limits {
            max_body_bytes_in_flight: 100,
            ..limits
        };
        let mut a = admission.body();
        a.grow(60, &limits).unwrap();
        let mut b = admission.body();
        assert!(b.grow(50, &limits).is_err());
        drop(a);
        b.grow(50, &limits).unwrap();
    }
}
