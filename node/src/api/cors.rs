//! CORS for the pages `--api-origins` lets in (WHIP and WHEP players and
//! publishers in a browser call the HTTP API from their own origin).
//!
//! Runs inside the trust check, so any `Origin` seen here is allowed, and
//! outside the token check: a preflight carries no token, and a page must be
//! able to read a 401. Preflights (`OPTIONS` with an `Origin`) and a WHIP
//! client's plain `OPTIONS` on the WHIP/WHEP resources are answered here.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const ALLOWED_METHODS: &str = "GET, POST, PUT, DELETE, OPTIONS";
const ALLOWED_HEADERS: &str = "authorization, content-type";
const EXPOSED_HEADERS: &str = "location, accept-post";

/// Adds CORS headers for an allowed `Origin`, and answers `OPTIONS`.
pub(super) async fn cors(request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let path = request.uri().path();
    let sdp_endpoint = path.starts_with("/v1/streams/") && (path.ends_with("/whip") || path.ends_with("/whep"));
    let sdp_resource = sdp_endpoint || path.starts_with("/v1/sessions/");
    if request.method() == Method::OPTIONS && (origin.is_some() || sdp_resource) {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        if sdp_endpoint {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
            headers.insert("accept-post", HeaderValue::from_static("application/sdp"));
        } else if sdp_resource {
            headers.insert(header::ALLOW, HeaderValue::from_static("DELETE, OPTIONS"));
        }
        if let Some(origin) = origin {
            allow(headers, origin);
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOWED_METHODS));
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOWED_HEADERS));
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        }
        return response;
    }
    let mut response = next.run(request).await;
    if let Some(origin) = origin {
        allow(response.headers_mut(), origin);
    }
    response
}

fn allow(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED_HEADERS));
    headers.append(header::VARY, HeaderValue::from_static("origin"));
}
