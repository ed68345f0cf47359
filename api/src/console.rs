//! `GET /ui/`: the web console, three files compiled into the binary (no
//! outside network, no build step). It is static: everything it shows comes
//! from the `/v1/…` API with the key the user enters, so it needs no key
//! itself and grants nothing.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::error::ApiError;

const INDEX_HTML: &str = include_str!("../console/index.html");
const APP_JS: &str = include_str!("../console/app.js");
const APP_CSS: &str = include_str!("../console/app.css");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/ui", web::get().to(redirect))
        .route("/ui/", web::get().to(index))
        .route("/ui/{asset}", web::get().to(asset));
}

async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/ui/"))
        .finish()
}

fn file(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // The console talks to this server only, runs no inline script or
        // style, and may not be framed (its admin buttons).
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

async fn index() -> HttpResponse {
    file("text/html; charset=utf-8", INDEX_HTML)
}

async fn asset(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(match name.as_str() {
        "app.js" => file("text/javascript; charset=utf-8", APP_JS),
        "app.css" => file("text/css; charset=utf-8", APP_CSS),
        "index.html" => file("text/html; charset=utf-8", INDEX_HTML),
        _ => {
            return Err(ApiError::NotFound {
                what: "console file",
                id: name.into_inner(),
            })
        }
    })
}
