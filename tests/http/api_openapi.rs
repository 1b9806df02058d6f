//! The OpenAPI document checked in as schemas/openapi.json must be exactly what the code
//! generates, and `/openapi.json` must serve it. After changing the API on purpose, run
//! `UPDATE_SCHEMAS=1 cargo test --test http api_openapi` and review the diff.

use std::path::Path;

use crate::api_util::*;

#[test]
fn checked_in_openapi_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/openapi.json");
    let expected = consent_ledger::api::openapi::render();
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let found = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        found == expected,
        "schemas/openapi.json drifted from the code; regenerate with \
         `UPDATE_SCHEMAS=1 cargo test --test http api_openapi` and review the diff"
    );
}

#[test]
fn the_document_describes_every_endpoint_and_its_shared_schemas() {
    let doc = consent_ledger::api::openapi::document();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/tenants/{tenant}/contacts/{contact}/consent", "get"),
        ("/v1/tenants/{tenant}/consent/check", "post"),
        ("/v1/tenants/{tenant}/contacts/{contact}/history", "get"),
        ("/v1/tenants/{tenant}/consent-events", "post"),
        ("/v1/tenants/{tenant}/imports", "post"),
        ("/v1/tenants/{tenant}/export", "get"),
        ("/v1/tenants/{tenant}/events", "get"),
        ("/v1/tenants/{tenant}/campaigns", "get"),
        ("/v1/tenants/{tenant}/campaigns/{campaign}", "get"),
        ("/v1/tenants/{tenant}/campaigns.html", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} is not described"
        );
    }
    // Every $ref resolves inside the document.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &piece[..piece.find('"').unwrap()];
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling $ref {name}"
        );
    }
    // The event shared with Kafka subscribers is the schemars one, not a second description.
    let event = &doc["components"]["schemas"]["ConsentEvent"];
    assert!(event["properties"]["prev_hash"].is_object(), "{event}");
    // So are the campaign statistics `stats --json` prints.
    let stats = &doc["components"]["schemas"]["TenantStats"];
    assert!(stats["properties"]["campaigns"].is_object(), "{stats}");
}

#[tokio::test]
async fn the_server_serves_the_document() {
    let s = Server::start().await;
    let served: serde_json::Value = s
        .client
        .get(s.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, consent_ledger::api::openapi::document());
    s.stop().await;
}
