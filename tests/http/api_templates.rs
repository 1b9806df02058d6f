//! `POST /v1/templates/lint` over HTTP: the same lint as the CLI, for template editors; any
//! valid token may call it, and a non-compliant template is a 422 problem listing the problems.

use crate::api_util::*;
use serde_json::{json, Value};

fn example(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/templates")
            .join(name),
    )
    .unwrap()
}

async fn lint(s: &Server, token: &str, body: String) -> reqwest::Response {
    s.post_body("/v1/templates/lint", token, "application/json", body)
        .await
}

#[tokio::test]
async fn compliant_template_is_200_with_the_report_for_tenant_and_admin_tokens() {
    let s = Server::start().await;
    for token in [ACME, GLOBEX, ADMIN] {
        let res = lint(&s, token, example("soldes-hiver-fr.json")).await;
        let report = ok_json(res).await;
        assert_eq!(
            report,
            json!({"template": "soldes_hiver_2026", "language": "fr", "category": "MARKETING",
                   "keyword_language": "fr", "compliant": true, "problems": []})
        );
    }
    let utility = ok_json(lint(&s, ACME, example("commande-expediee-utility.json")).await).await;
    assert_eq!(utility["compliant"], true);
    s.stop().await;
}

#[tokio::test]
async fn non_compliant_template_is_a_422_problem_with_the_problems() {
    let s = Server::start().await;
    let res = lint(
        &s,
        ACME,
        example("nouvelle-collection-fr-non-conforme.json"),
    )
    .await;
    let p = problem(res, 422).await;
    assert_eq!(
        p["type"],
        "urn:consent-ledger:problem:template-not-compliant"
    );
    assert_eq!(p["compliant"], false);
    assert_eq!(p["template"], "nouvelle_collection");
    let problems = p["problems"].as_array().unwrap();
    let found: Vec<(&str, &str)> = problems
        .iter()
        .map(|x| (x["code"].as_str().unwrap(), x["pointer"].as_str().unwrap()))
        .collect();
    assert_eq!(
        found,
        [
            ("footer-without-opt-out", "/components/2/text"),
            ("missing-opt-out-button", "/components/3/buttons")
        ]
    );
    assert_eq!(
        problems[0]["suggestion"],
        "use \"Envoyez STOP pour vous désabonner\""
    );
    assert!(p["detail"].as_str().unwrap().contains("/components/2/text"));
    // The wrong-language case, as the CLI reports it.
    let en = json!({"name": "promo", "language": "en_GB", "category": "marketing", "components": [
        {"type": "BODY", "text": "Sale"},
        {"type": "FOOTER", "text": "Envoyez ARRÊT pour vous désabonner"},
        {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "STOP"}]}]});
    let p = problem(lint(&s, ACME, en.to_string()).await, 422).await;
    assert_eq!(p["problems"][0]["code"], "wrong-language-keyword");
    assert_eq!(p["problems"][0]["pointer"], "/components/1/text");
    s.stop().await;
}

#[tokio::test]
async fn not_a_template_is_400_and_tokens_are_required() {
    let s = Server::start().await;
    for (body, expected) in [
        ("{\"name\":", "not valid"),
        (r#"{"language":"fr","category":"MARKETING"}"#, "\"name\""),
        (
            r#"{"name":"a","language":"fr","category":"NEWS"}"#,
            "category",
        ),
    ] {
        let p = problem(lint(&s, ACME, body.to_string()).await, 400).await;
        assert!(p["detail"].as_str().unwrap().contains(expected), "{p}");
    }
    let res = s
        .client
        .post(s.url("/v1/templates/lint"))
        .header("content-type", "application/json")
        .body(example("soldes-hiver-fr.json"))
        .send()
        .await
        .unwrap();
    problem(res, 401).await;
    problem(
        lint(&s, "not-a-token", example("soldes-hiver-fr.json")).await,
        401,
    )
    .await;
    let res = s
        .post_body(
            "/v1/templates/lint",
            ACME,
            "text/plain",
            example("soldes-hiver-fr.json"),
        )
        .await;
    problem(res, 415).await;
    let res = s.get("/v1/templates/lint", ACME).send().await.unwrap();
    let _: Value = problem(res, 405).await;
    s.stop().await;
}
