//! Black-box tests of the HTTP API: the real `api::serve` on 127.0.0.1:0 (and the real
//! binary for `serve`), driven by an HTTP client. One test binary for all of them.

#[path = "../api_util/mod.rs"]
mod api_util;
#[path = "../common/mod.rs"]
mod common;

mod access_export;
mod api_auth;
mod api_campaigns;
mod api_events;
mod api_openapi;
mod api_query;
mod api_serve;
mod api_templates;
mod erase;
mod iss11;
mod iss11_limits;
mod raw;
mod webhooks;
