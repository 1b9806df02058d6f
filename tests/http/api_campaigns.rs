//! Black-box tests of the campaign endpoints: the same numbers as `stats --json`, one campaign
//! by id, the HTML report, and the usual auth and problem answers.

use crate::api_util::*;
use crate::common::campaigns::{history_for, HISTORY};
use serde_json::Value;

async fn seeded() -> Server {
    let s = Server::start().await;
    s.ingest(history_for("acme")).await;
    s
}

#[tokio::test]
async fn campaigns_list_one_and_html() {
    let s = seeded().await;
    let all = s.get_json("/v1/tenants/acme/campaigns", ACME).await;
    assert_eq!(all["tenant"], "acme");
    let campaigns = all["campaigns"].as_array().unwrap();
    assert_eq!(campaigns.len(), HISTORY.len());
    let flagged: Vec<&Value> = campaigns
        .iter()
        .filter(|c| c["anomaly"]["flagged"] == true)
        .collect();
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0]["campaign_id"], "flash-sale");

    // The library computes the same numbers the endpoint serves.
    let acme = "acme".parse().unwrap();
    let profile = s.settings.profile(&acme);
    let direct = consent_ledger::query::stats(&s.state.ledger, &profile, &acme, None).unwrap();
    assert_eq!(all, serde_json::to_value(&direct).unwrap());

    let one = s
        .get_json("/v1/tenants/acme/campaigns/flash-sale", ADMIN)
        .await;
    assert_eq!(one["sent"], 400);
    assert_eq!(one["opt_outs"], 24);
    assert_eq!(one["anomaly"]["flagged"], true);

    let later = s
        .get_json("/v1/tenants/acme/campaigns?since=2026-11-20", ACME)
        .await;
    assert_eq!(later["campaigns"].as_array().unwrap().len(), 2);

    let res = s
        .get("/v1/tenants/acme/campaigns.html", ACME)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "text/html; charset=utf-8"
    );
    let html = res.text().await.unwrap();
    assert_eq!(html, consent_ledger::report::html(&direct));
    assert_eq!(html.matches("class=\"bar anomaly\"").count(), 1);
    s.stop().await;
}

#[tokio::test]
async fn campaign_errors_are_problems() {
    let s = seeded().await;
    let p = problem(
        s.get("/v1/tenants/acme/campaigns/nope", ACME)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    assert_eq!(p["type"], "urn:consent-ledger:problem:unknown-campaign");
    problem(
        s.get("/v1/tenants/acme/campaigns?since=yesterday", ACME)
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    // Another tenant's token sees nothing of acme's campaigns, in JSON or HTML.
    for path in [
        "/v1/tenants/acme/campaigns",
        "/v1/tenants/acme/campaigns.html",
        "/v1/tenants/acme/campaigns/flash-sale",
    ] {
        problem(s.get(path, GLOBEX).send().await.unwrap(), 403).await;
        let res = s.client.get(s.url(path)).send().await.unwrap();
        problem(res, 401).await;
    }
    // A tenant without campaigns gets an empty list.
    let globex = s.get_json("/v1/tenants/globex/campaigns", GLOBEX).await;
    assert_eq!(globex["campaigns"], Value::Array(vec![]));
    s.stop().await;
}
