//! The access export over HTTP (RGPD Art. 15): the person's events with their proofs, in the
//! verifiable JSON form or the forms sent to the person, checked here with the library's
//! offline verifier as an auditor would check the file.

use consent_ledger::proof::{verify, Signer};

use crate::api_util::*;

#[tokio::test]
async fn the_access_export_of_a_person_verifies_offline_in_every_form() {
    let s = Server::start().await;
    let at = chrono::Utc::now().to_rfc3339();
    let mut linked: serde_json::Value =
        serde_json::from_str(&inbound("acme", "m1", "+33612345678", &at, "STOP")).unwrap();
    linked["from_user_id"] = "FR.13491208655302741918".into();
    s.ingest(format!(
        "{linked}\n{}\n",
        inbound("acme", "m2", "+33699999999", &at, "STOP")
    ))
    .await;
    let path = "/v1/tenants/acme/contacts/FR.13491208655302741918/export";
    let res = s.get(path, ACME).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let bytes = res.bytes().await.unwrap();
    let key = Signer::from_seed(SIGNING_SEED).public_key();
    let v = verify::verify(&bytes, Some(&key)).unwrap();
    assert_eq!(
        v.events, 2,
        "the link and the STOP, not the other contact's STOP"
    );
    assert_eq!(v.identifiers, ["+33612345678", "FR.13491208655302741918"]);
    let mut edited = bytes.to_vec();
    let at = edited.windows(4).position(|w| w == b"STOP").unwrap();
    edited[at] = b'X';
    assert!(matches!(
        verify::verify(&edited, Some(&key)),
        Err(verify::VerifyError::Tampered(_))
    ));
    for (format, kind) in [("html", "text/html"), ("text", "text/plain")] {
        let res = s
            .get(&format!("{path}?format={format}"), ACME)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
        let body = res.text().await.unwrap();
        assert!(body.contains("withdrew consent to marketing"), "{body}");
    }
    let res = s
        .get("/v1/tenants/acme/contacts/%2B33611111111/export", ACME)
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
    let res = s
        .get(&format!("{path}?format=pdf"), ACME)
        .send()
        .await
        .unwrap();
    problem(res, 400).await;
    let res = s.get(path, GLOBEX).send().await.unwrap();
    problem(res, 403).await;
    s.stop().await;
}
