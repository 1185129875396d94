//! The capsule registry over HTTP against the real server, on both backends: the seed's story
//! up to publication (an author registers a key and submits a signed capsule with the real
//! multipart encoding → auto-approved and published; a capsule with a dangerous permission →
//! review queue → a reviewer approves → published, the review event naming reviewer and
//! score), the refusals (bad signature → FORBIDDEN with nothing stored, bad manifest → JSON
//! Pointer problems, tar traversal → typed error, a published version resubmitted → CONFLICT),
//! verification before and after one byte of the stored bundle changes, and the catalogue equal
//! to its rebuild.

use std::io::Write;

use agora_api::app::AppOptions;
use agora_api::capsules::CapsuleOptions;
use agora_commands::capsules::blobs::BlobStore;
use agora_commands::capsules::verify::{facts_from_log, verify, VerifyFailure};
use agora_domain::capsules::sha256_hex;
use agora_domain::capsules::signature::{sign, CapsuleStatement};
use agora_domain::capsules::CapsuleName;
use agora_projections::capsules::CapsuleProjection;
use agora_projections::rebuild::rebuild_and_compare;
use agora_tests::{both_backends, error_code, read_all, TestServer, TestStore};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

const BOUNDARY: &str = "agora-capsule-boundary-7d3f";

pub(crate) async fn server(t: TestStore) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("blob dir");
    let options = AppOptions {
        rate_limit_per_minute: 1_000,
        capsules: Some(CapsuleOptions::in_dir(dir.path())),
        ..AppOptions::default()
    };
    (TestServer::start_with(t, options).await, dir)
}

pub(crate) async fn make_key(s: &TestServer, principal: &str, role: &str, tenant: &str) -> String {
    let r = s
        .graphql(
            Some(&s.admin_token),
            "mutation($p: String!, $r: String!, $t: String!, $k: String!) {
               createApiKey(input: {principal: $p, role: $r, tenant: $t}, idempotencyKey: $k) { token } }",
            json!({"p": principal, "r": role, "t": tenant, "k": format!("key-{principal}-{role}")}),
        )
        .await;
    r["data"]["createApiKey"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned()
}

fn manifest(name: &str, version: &str, permissions: &str) -> String {
    format!(
        "apiVersion: soma.dev/v1
kind: TaskCapsule
metadata:
  name: {name}
  version: {version}
  author: community-user-123
  category: Data Engineering
  tags: [etl, csv]
spec:
  description: Summarise CSV files into a JSON report
  permissions: [{permissions}]
  tokenEstimate:
    planning: 200
    execution: 600
    total: 800
  inputs:
    - name: path
      type: file
      required: true
  outputs:
    - name: summary
      type: json
"
    )
}

/// A `.tar.gz` of regular files, with raw names (so a test can write `../x`).
pub(crate) fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = Vec::new();
    for (name, data) in files {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_mtime(0);
        header.set_cksum();
        tar.extend_from_slice(header.as_bytes());
        tar.extend_from_slice(data);
        tar.extend(std::iter::repeat_n(0u8, (512 - data.len() % 512) % 512));
    }
    tar.extend(std::iter::repeat_n(0u8, 1024));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn bundle(tag: &str) -> Vec<u8> {
    tar_gz(&[
        (
            "capsule/main.py",
            format!("print('summary {tag}')\n").as_bytes(),
        ),
        ("capsule/README.md", b"# CSV summary\n"),
    ])
}

/// The DSSE envelope (JSON) an author's key makes over a submission's digests.
pub(crate) fn envelope(
    key: &SigningKey,
    name: &str,
    version: &str,
    manifest: &str,
    bundle: &[u8],
) -> String {
    let statement = CapsuleStatement::new(
        name,
        version,
        &sha256_hex(manifest.as_bytes()),
        &sha256_hex(bundle),
    );
    String::from_utf8(sign(&statement, key).to_json()).unwrap()
}

/// A `multipart/form-data` body as `curl -F manifest=@m.yaml -F bundle=@b.tar.gz` sends it.
fn multipart(manifest: &str, bundle: &[u8], signature: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    let mut part = |name: &str, file: &str, kind: &str, data: &[u8]| {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; \
                 filename=\"{file}\"\r\nContent-Type: {kind}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    };
    part(
        "manifest",
        "capsule.yaml",
        "application/octet-stream",
        manifest.as_bytes(),
    );
    part("bundle", "capsule.tar.gz", "application/gzip", bundle);
    if let Some(sig) = signature {
        part(
            "signature",
            "capsule.dsse.json",
            "application/json",
            sig.as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// One HTTP/1.1 request with a binary body; the status and the JSON body (or the text).
pub(crate) async fn http(
    s: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for (name, value) in headers {
        request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    stream.write_all(&request).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json = serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()));
    (status, json)
}

pub(crate) async fn submit(
    s: &TestServer,
    token: &str,
    manifest: &str,
    bundle: &[u8],
    signature: Option<&str>,
) -> (u16, Value) {
    let headers = [
        ("authorization", format!("Bearer {token}")),
        (
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        ),
    ];
    let body = multipart(manifest, bundle, signature);
    http(
        s,
        "POST",
        "/v1/marketplace/capsules/submit",
        &headers,
        &body,
    )
    .await
}

pub(crate) async fn get(s: &TestServer, token: &str, path: &str) -> (u16, Value) {
    http(
        s,
        "GET",
        path,
        &[("authorization", format!("Bearer {token}"))],
        b"",
    )
    .await
}

/// Waits until every projection has applied the log's head.
pub(crate) async fn settle(s: &TestServer) {
    s.state.market.settle_reads().await;
}

pub(crate) async fn register_key(s: &TestServer, token: &str, key: &SigningKey) -> Value {
    s.graphql(
        Some(token),
        "mutation($k: String!, $i: String) { registerCapsuleKey(publicKey: $k, idempotencyKey: $i) { author keyid } }",
        json!({"k": hex::encode(key.verifying_key().as_bytes()), "i": "author-key"}),
    )
    .await
}

async fn capsule_story(t: TestStore) {
    let (s, blobs_dir) = server(t).await;
    let alice = make_key(&s, "alice", "author", "acme").await;
    let rita = make_key(&s, "rita", "reviewer", "platform").await;
    let author_key = SigningKey::from_bytes(&[9; 32]);
    let r = register_key(&s, &alice, &author_key).await;
    assert_eq!(
        r["data"]["registerCapsuleKey"]["author"], "acme/alice",
        "{r}"
    );

    // 1. A signed, quiet capsule: auto-approved and published with the platform's signature.
    let m = manifest("csv-summary", "1.0.0", "filesystem.read");
    let b = bundle("one");
    let sig = envelope(&author_key, "csv-summary", "1.0.0", &m, &b);
    let (status, body) = submit(&s, &alice, &m, &b, Some(&sig)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "csv-summary");
    assert_eq!(body["version"], "1.0.0");
    assert_eq!(body["status"], "published", "{body}");
    assert_eq!(body["autoApproved"], true);
    assert_eq!(body["bundleSha256"], sha256_hex(&b));
    // A retry of the same upload answers the same.
    let (again, same) = submit(&s, &alice, &m, &b, Some(&sig)).await;
    assert_eq!((again, &same), (201, &body));
    settle(&s).await;
    let (status, detail) = get(&s, &alice, "/v1/marketplace/capsules/csv-summary").await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["publishedVersion"], "1.0.0", "{detail}");
    assert_eq!(detail["versions"][0]["status"], "published");
    assert!(detail["versions"][0]["signerKeyid"].is_string(), "{detail}");
    let factors = detail["versions"][0]["riskFactors"].as_array().unwrap();
    assert_eq!(factors.len(), 14, "{detail}");
    let (status, list) = get(&s, &rita, "/v1/marketplace/capsules?q=SUMMARY").await;
    assert_eq!(status, 200);
    assert_eq!(list["capsules"][0]["name"], "csv-summary", "{list}");
    let (status, sbom) = get(
        &s,
        &alice,
        "/v1/marketplace/capsules/csv-summary/1.0.0/sbom",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(sbom["bomFormat"], "CycloneDX", "{sbom}");
    assert_eq!(sbom["specVersion"], "1.6");
    let (status, schema) = get(&s, "", "/schemas/capsule-manifest/v1.json").await;
    assert_eq!(status, 200);
    assert_eq!(
        schema["$id"],
        "https://agora.example/schemas/capsule-manifest/v1.json"
    );

    // 2. A dangerous permission: queued; a reviewer approves on the score shown; published.
    let m2 = manifest("web-fetcher", "0.1.0", "network.egress");
    let b2 = bundle("two");
    let sig2 = envelope(&author_key, "web-fetcher", "0.1.0", &m2, &b2);
    let (status, queued) = submit(&s, &alice, &m2, &b2, Some(&sig2)).await;
    assert_eq!(status, 201, "{queued}");
    assert_eq!(queued["status"], "queued", "{queued}");
    settle(&s).await;
    let r = s
        .graphql(
            Some(&rita),
            "{ reviewQueue { name version riskScore reviewReasons } }",
            json!({}),
        )
        .await;
    let queue = r["data"]["reviewQueue"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(queue.len(), 1, "{r}");
    assert_eq!(queue[0]["name"], "web-fetcher");
    let score = queue[0]["riskScore"].as_str().unwrap().to_owned();
    assert_eq!(score, queued["riskScore"].as_str().unwrap());
    // The author may not review; the reviewer may.
    let review = "mutation($s: String!, $k: String) { reviewCapsuleVersion(name: \"web-fetcher\", version: \"0.1.0\", decision: \"approve\", notes: \"egress to the documented API only\", riskScore: $s, idempotencyKey: $k) { status } }";
    let r = s
        .graphql(Some(&alice), review, json!({"s": score, "k": "r1"}))
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    let r = s
        .graphql(Some(&rita), review, json!({"s": score, "k": "r1"}))
        .await;
    assert_eq!(
        r["data"]["reviewCapsuleVersion"]["status"], "published",
        "{r}"
    );
    let events = read_all(&s.store.store).await;
    let reviewed = events
        .iter()
        .find(|e| e.event_type == "CapsuleVersionReviewed")
        .expect("a review event");
    let payload = &reviewed.payload["Reviewed"];
    assert_eq!(payload["reviewer_id"], "platform/rita", "{payload}");
    assert_eq!(
        payload["risk_score_seen"].as_str(),
        Some(score.as_str()),
        "{payload}"
    );
    assert_eq!(payload["decision"], "approve");
    settle(&s).await;
    let (_, detail) = get(&s, &rita, "/v1/marketplace/capsules/web-fetcher").await;
    assert_eq!(detail["versions"][0]["status"], "published", "{detail}");
    assert_eq!(detail["versions"][0]["reviewedBy"], "platform/rita");

    // 3. Resubmitting a published version with other content: CONFLICT, nothing appended.
    let b3 = bundle("changed");
    let before = read_all(&s.store.store).await.len();
    let (status, body) = submit(&s, &alice, &m, &b3, None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "CONFLICT");
    assert_eq!(body["error"]["reason"], "VersionImmutable", "{body}");
    assert_eq!(read_all(&s.store.store).await.len(), before);
    assert!(!BlobStore::local_file(blobs_dir.path(), &sha256_hex(&b3))
        .unwrap()
        .exists());

    // 4. Verification: both signatures and the stored bytes; then one byte of the bundle changes.
    let verify_q = "{ verifyCapsule(name: \"csv-summary\", version: \"1.0.0\") { ok failure authorKeyid platformKeyid } }";
    let r = s.graphql(Some(&rita), verify_q, json!({})).await;
    assert_eq!(r["data"]["verifyCapsule"]["ok"], true, "{r}");
    assert!(r["data"]["verifyCapsule"]["authorKeyid"].is_string(), "{r}");
    let name = CapsuleName::parse("csv-summary").unwrap();
    let version = semver::Version::new(1, 0, 0);
    let blobs = BlobStore::local(blobs_dir.path()).unwrap();
    let platform = SigningKey::from_bytes(&[1u8; 32]).verifying_key();
    let facts = facts_from_log(&s.store.store, &name, &version)
        .await
        .unwrap();
    assert!(verify(&facts, &blobs, &platform).await.is_ok());
    let file = BlobStore::local_file(blobs_dir.path(), &sha256_hex(&b)).unwrap();
    let mut stored = std::fs::read(&file).unwrap();
    let middle = stored.len() / 2;
    stored[middle] ^= 0x01;
    std::fs::write(&file, &stored).unwrap();
    match verify(&facts, &blobs, &platform).await {
        Err(VerifyFailure::BlobChanged { what: "bundle", .. }) => {}
        other => panic!("expected a changed bundle, got {other:?}"),
    }
    let r = s.graphql(Some(&rita), verify_q, json!({})).await;
    assert_eq!(r["data"]["verifyCapsule"]["ok"], false, "{r}");
    let failure = r["data"]["verifyCapsule"]["failure"].as_str().unwrap();
    assert!(failure.contains("bundle changed"), "{failure}");

    // 5. The catalogue equals its rebuild from the log.
    settle(&s).await;
    let cmp = rebuild_and_compare(&s.store.store, &CapsuleProjection::default(), false)
        .await
        .unwrap();
    assert!(cmp.is_equal(), "{cmp:#?}");
}
both_backends!(
    capsule_submitted_reviewed_published_and_verified,
    capsule_story
);

async fn capsule_refusals(t: TestStore) {
    let (s, blobs_dir) = server(t).await;
    let alice = make_key(&s, "alice", "author", "acme").await;
    let client = make_key(&s, "carol", "client", "acme").await;
    let author_key = SigningKey::from_bytes(&[9; 32]);
    register_key(&s, &alice, &author_key).await;
    let m = manifest("csv-summary", "1.0.0", "filesystem.read");
    let b = bundle("one");

    // Only authors (and admins) submit.
    let (status, body) = submit(&s, &client, &m, &b, None).await;
    assert_eq!(status, 403, "{body}");

    // A signature by a key the author never registered: FORBIDDEN, nothing stored.
    let stranger = SigningKey::from_bytes(&[42; 32]);
    let bad_sig = envelope(&stranger, "csv-summary", "1.0.0", &m, &b);
    let before = read_all(&s.store.store).await.len();
    let (status, body) = submit(&s, &alice, &m, &b, Some(&bad_sig)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    // A signature by the right key over other content: FORBIDDEN too.
    let wrong = envelope(&author_key, "csv-summary", "1.0.0", &m, &bundle("other"));
    let (status, body) = submit(&s, &alice, &m, &b, Some(&wrong)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["reason"], "DigestMismatch", "{body}");
    assert_eq!(read_all(&s.store.store).await.len(), before);
    assert!(!BlobStore::local_file(blobs_dir.path(), &sha256_hex(&b))
        .unwrap()
        .exists());

    // A bad manifest: every problem with its JSON Pointer.
    let bad = m
        .replace("version: 1.0.0", "version: one")
        .replace("[filesystem.read]", "[filesystem.read, teleport]");
    let (status, body) = submit(&s, &alice, &bad, &b, None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "BAD_USER_INPUT");
    let pointers: Vec<&str> = body["error"]["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .filter_map(|p| p["pointer"].as_str())
        .collect();
    assert!(pointers.contains(&"/metadata/version"), "{body}");
    assert!(pointers.contains(&"/spec/permissions/1"), "{body}");
    // The same over GraphQL: extensions.problems.
    let r = s
        .graphql(
            Some(&alice),
            "mutation($i: SubmitCapsuleInput!) { submitCapsule(input: $i, idempotencyKey: \"g1\") { status } }",
            json!({"i": {"manifest": bad, "bundleBase64": base64_encode(&b)}}),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    assert!(r["errors"][0]["extensions"]["problems"].is_array(), "{r}");

    // A bundle climbing out with '..': a typed error.
    let evil = tar_gz(&[("../../etc/cron.d/x", b"* * * * * root sh\n")]);
    let (status, body) = submit(&s, &alice, &m, &evil, None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["reason"], "ParentTraversal", "{body}");
    // Not multipart at all.
    let (status, body) = http(
        &s,
        "POST",
        "/v1/marketplace/capsules/submit",
        &[
            ("authorization", format!("Bearer {alice}")),
            ("content-type", "application/json".into()),
        ],
        b"{}",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(read_all(&s.store.store).await.len(), before);

    // Unsigned submissions are accepted as the seed's curl sends them (a risk factor).
    let (status, body) = submit(&s, &alice, &m, &b, None).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["signerKeyid"].is_null());
}
both_backends!(
    capsule_submissions_are_refused_with_typed_errors,
    capsule_refusals
);

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Regression: a signed submission auto-approved while some other transaction of the cluster
/// was open lost the author's signature (the publication looked for the author's envelope in
/// the global log's readable prefix, which stops below the oldest open transaction), and the
/// version then failed verification. The publication now reads the capsule's own stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_capsule_published_while_another_transaction_is_open_keeps_the_author_signature() {
    use sqlx::Connection;
    let t = agora_tests::TestStore::postgres().await;
    let agora_commands::StoreLocation::Postgres { url } = t.location.clone() else {
        panic!("a PostgreSQL store");
    };
    let (s, _blobs) = server(t).await;
    let alice = make_key(&s, "alice", "author", "acme").await;
    let author_key = SigningKey::from_bytes(&[9; 32]);
    register_key(&s, &alice, &author_key).await;
    // Another client's transaction holds a transaction id, open across the submission.
    let mut other = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut other)
        .await
        .unwrap();
    let m = manifest("held-open", "1.0.0", "filesystem.read");
    let b = bundle("held");
    let sig = envelope(&author_key, "held-open", "1.0.0", &m, &b);
    let (status, body) = submit(&s, &alice, &m, &b, Some(&sig)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (201, Some("published")),
        "{body}"
    );
    let verify_q =
        "{ verifyCapsule(name: \"held-open\", version: \"1.0.0\") { ok failure authorKeyid } }";
    let r = s.graphql(Some(&alice), verify_q, json!({})).await;
    assert_eq!(r["data"]["verifyCapsule"]["ok"], true, "{r}");
    assert!(r["data"]["verifyCapsule"]["authorKeyid"].is_string(), "{r}");
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
}
