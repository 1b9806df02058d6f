//! `DELETE /v1/tenants/{t}/contacts/{c}` (RGPD Art. 17): the tenant's own token only, 200 with
//! the `Erased` event, the same event again, 404 for a contact never seen, and every
//! identifier of the person out of marketing afterwards.

use serde_json::{json, Value};

use crate::api_util::*;

const USER_ID: &str = "FR.13491208655302741918";
const PATH: &str = "/v1/tenants/acme/contacts/%2B33612345678?reason=Art.%2017%20request";

async fn opted_in_person(s: &Server) {
    let at = chrono::Utc::now().to_rfc3339();
    let mut start: Value =
        serde_json::from_str(&inbound("acme", "m1", "+33612345678", &at, "START")).unwrap();
    start["from_user_id"] = USER_ID.into();
    s.ingest(format!("{start}\n")).await;
}

async fn may_send(s: &Server, contact: &str) -> Value {
    s.get_json(
        &format!("/v1/tenants/acme/contacts/{contact}/consent"),
        ACME,
    )
    .await["may_send"]
        .clone()
}

#[tokio::test]
async fn the_tenant_token_erases_the_person_and_both_identifiers_stay_out_of_marketing() {
    let s = Server::start().await;
    opted_in_person(&s).await;
    assert_eq!(may_send(&s, USER_ID).await, true);

    let res = s.delete(PATH, ACME).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let erased: Value = res.json().await.unwrap();
    assert_eq!(erased["type"], "Erased");
    assert_eq!(erased["linked"], json!([USER_ID]));
    assert_eq!(erased["erasure"]["reason"], "Art. 17 request");
    let token_id = &sha(ACME)[..12];
    assert_eq!(erased["erasure"]["requested_by"], format!("api:{token_id}"));

    for contact in ["%2B33612345678", USER_ID] {
        assert_eq!(may_send(&s, contact).await, false, "{contact}");
    }
    let res = s
        .post("/v1/tenants/acme/consent/check", ACME)
        .json(&json!({"contacts": ["+33612345678", USER_ID, "+33699999999"]}))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["allowed"], json!(["+33699999999"]), "{body}");

    let again: Value = s
        .delete(PATH, ACME)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["event_id"], erased["event_id"]);
    s.stop().await;
}

#[tokio::test]
async fn admin_and_other_tenants_tokens_may_not_erase_and_unknown_contacts_are_404() {
    let s = Server::start().await;
    opted_in_person(&s).await;
    for token in [ADMIN, GLOBEX] {
        let res = s.delete(PATH, token).send().await.unwrap();
        assert_eq!(res.status(), 403, "{token}");
    }
    assert_eq!(may_send(&s, USER_ID).await, true, "nothing was erased");
    let unknown = "/v1/tenants/acme/contacts/%2B33699999999?reason=ticket";
    let res = s.delete(unknown, ACME).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let no_reason = "/v1/tenants/acme/contacts/%2B33612345678";
    assert_eq!(
        s.delete(no_reason, ACME).send().await.unwrap().status(),
        400
    );
    let blank = "/v1/tenants/acme/contacts/%2B33612345678?reason=%20";
    assert_eq!(s.delete(blank, ACME).send().await.unwrap().status(), 400);
    s.stop().await;
}
