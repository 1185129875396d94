//! The authorization matrix, generated from the schema and the router: every GraphQL query,
//! mutation and subscription field and every REST route, called by every role with a key of the
//! target tenant (`acme`), of another tenant (`globex`) and of the platform, against the outcome
//! the table below expects. A field or route without a row fails the test, and so does a row
//! for something that no longer exists.
//!
//! The table states each row's rule: the roles that may call it and how far a key reaches.
//! `Any`: any tenant's key (each reaches its own tenant's data, e.g. `events`, or a seller named
//! by `subPKPId`, which is the seller of the caller's tenant); `Own(cross)`: the
//! target tenant's keys, and platform keys of the `cross` roles; `Platform`: platform keys only;
//! `Public`: no key needed. Denied means `FORBIDDEN`/403, or, for `hidden` rows, that the target
//! looks absent (null, `NOT_FOUND`, 404).

use std::collections::BTreeSet;
use std::time::Duration;

use agora_api::lapverse::demo::{demo_series, ensure_demo_tenant};
use agora_domain::access::Role;
use agora_tests::{error_code, http_request_full, TestServer, TestStore};
use futures::StreamExt;
use serde_json::{json, Value};

use Role::{Admin, Auditor, Author, Finance, Reviewer, Seller};

const ALL: &[Role] = &Role::ALL;
/// Platform roles that read every tenant's Lap-Verse data.
const READ_ANY: &[Role] = &[Admin, Finance, Auditor];
/// Who reads a seller's analyses and profile (the seller itself, or these).
const SELLER_READERS: &[Role] = &[Seller, Reviewer, Finance, Auditor, Admin];
/// Platform roles that read every tenant's sellers.
const MARKET_CROSS: &[Role] = &[Admin, Finance, Auditor, Reviewer];
/// The principal of every matrix key: a seller key acts for the seller of that name.
const SELLER: &str = "sub-pkp-matrix";
const TARGET: &str = "acme";
const OTHER: &str = "globex";

#[derive(Clone, Copy, Debug)]
enum Reach {
    Public,
    Any,
    Own(&'static [Role]),
    Platform,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyScope {
    Target,
    OtherTenant,
    Platform,
}

/// One row: what is called, who may call it, how far a key reaches.
struct Row {
    /// `query me`, `mutation createApiKey`, `subscription events`, `GET /api/status`.
    name: &'static str,
    roles: &'static [Role],
    reach: Reach,
    /// Denied as "absent" rather than `FORBIDDEN`.
    hidden: bool,
}

const fn row(name: &'static str, roles: &'static [Role], reach: Reach) -> Row {
    Row {
        name,
        roles,
        reach,
        hidden: false,
    }
}

const fn hidden(name: &'static str, roles: &'static [Role], reach: Reach) -> Row {
    Row {
        name,
        roles,
        reach,
        hidden: true,
    }
}

/// The expected outcomes, in the order they run (a seller's key is registered last: after it,
/// operators can no longer pay that seller without its signature).
const TABLE: &[Row] = &[
    // Identity and the event history.
    row("query me", ALL, Reach::Any),
    row("query ledgerPublicKey", ALL, Reach::Any),
    row("query events", &[Auditor, Admin], Reach::Any),
    row("subscription events", &[Auditor, Admin], Reach::Any),
    // The ledger, projections and parked events: platform staff.
    row(
        "query ledgerBalance",
        &[Finance, Auditor, Admin],
        Reach::Platform,
    ),
    row(
        "query ledgerHistory",
        &[Finance, Auditor, Admin],
        Reach::Platform,
    ),
    row(
        "query ledgerAccounts",
        &[Finance, Auditor, Admin],
        Reach::Platform,
    ),
    row(
        "query ledgerBalanceAsOf",
        &[Finance, Auditor, Admin],
        Reach::Platform,
    ),
    row("query projections", &[Auditor, Admin], Reach::Platform),
    row("query parkedEvents", &[Admin], Reach::Platform),
    row("mutation retryParkedEvent", &[Admin], Reach::Platform),
    row("mutation skipParkedEvent", &[Admin], Reach::Platform),
    row(
        "mutation recordJournalEntry",
        &[Finance, Admin],
        Reach::Platform,
    ),
    row("mutation placeHold", &[Finance, Admin], Reach::Platform),
    row("mutation postHold", &[Finance, Admin], Reach::Platform),
    row("mutation voidHold", &[Finance, Admin], Reach::Platform),
    // Keys: a tenant's admin for its own tenant, platform admins for any.
    row("query apiKeys", &[Admin], Reach::Own(&[Admin])),
    row("mutation createApiKey", &[Admin], Reach::Own(&[Admin])),
    hidden("mutation revokeApiKey", &[Admin], Reach::Own(&[Admin])),
    // Tenants, tasks and rounds.
    row("query lapverseTenant", ALL, Reach::Own(READ_ANY)),
    row("query lapverseTenants", READ_ANY, Reach::Any),
    hidden("query task", ALL, Reach::Own(READ_ANY)),
    hidden("query competition", ALL, Reach::Own(READ_ANY)),
    row("query tasks", ALL, Reach::Own(READ_ANY)),
    row("query competitions", ALL, Reach::Own(READ_ANY)),
    row("query chargeback", ALL, Reach::Own(READ_ANY)),
    row("query webhookDeliveries", ALL, Reach::Own(READ_ANY)),
    row("mutation registerTenant", &[Admin], Reach::Own(&[Admin])),
    row("mutation updateTenant", &[Admin], Reach::Own(&[Admin])),
    row("mutation setTenantFlag", &[Admin], Reach::Own(&[Admin])),
    row("mutation removeTenantFlag", &[Admin], Reach::Own(&[Admin])),
    row("mutation registerWebhook", &[Admin], Reach::Own(&[Admin])),
    row("mutation removeWebhook", &[Admin], Reach::Own(&[Admin])),
    row("mutation setTenantSeries", &[Admin], Reach::Own(&[Admin])),
    row("mutation submitTask", ALL, Reach::Own(&[Admin])),
    row("mutation launchCompetition", ALL, Reach::Own(&[Admin])),
    row("POST /api/v2/tasks", ALL, Reach::Own(&[Admin])),
    row("POST /api/v2/self-compete", ALL, Reach::Own(&[Admin])),
    hidden("GET /api/v2/tasks/{id}", ALL, Reach::Own(READ_ANY)),
    hidden("GET /api/v2/self-compete/{id}", ALL, Reach::Own(READ_ANY)),
    row("GET /api/v2/self-compete/export", ALL, Reach::Own(READ_ANY)),
    row("GET /api/status", ALL, Reach::Own(READ_ANY)),
    // The log marketplace. Sellers are scoped by tenant: a `subPKPId` names the seller of the
    // caller's tenant (so calls naming one reach that tenant only: `Any`); the fixture analysis is
    // acme's, readable by acme's keys and by platform staff.
    row("query logMarketDashboard", ALL, Reach::Any),
    row("query logMarketPricing", ALL, Reach::Any),
    row("query logMarketAgents", ALL, Reach::Any),
    row("query logMarketTopEarners", ALL, Reach::Any),
    row("query logMarketLeaderboard", ALL, Reach::Any),
    row("query logMarketQualityTrends", ALL, Reach::Any),
    row("GET /npe/log-marketplace/dashboard", ALL, Reach::Any),
    row("GET /npe/log-marketplace/pricing", ALL, Reach::Any),
    row("GET /npe/log-marketplace/agents", ALL, Reach::Any),
    row("GET /npe/log-marketplace/top-earners", ALL, Reach::Any),
    row("GET /npe/log-marketplace/quality-trends", ALL, Reach::Any),
    row("GET /npe/log-marketplace/leaderboard", ALL, Reach::Any),
    row("mutation analyzeLog", &[Seller, Admin], Reach::Any),
    row("mutation batchAnalyzeLogs", &[Seller, Admin], Reach::Any),
    row("mutation simulateLogs", &[Seller, Admin], Reach::Any),
    row(
        "POST /npe/log-marketplace/analyze",
        &[Seller, Admin],
        Reach::Any,
    ),
    row(
        "POST /npe/log-marketplace/batch-analyze",
        &[Seller, Admin],
        Reach::Any,
    ),
    row(
        "POST /npe/log-marketplace/simulate",
        &[Seller, Admin],
        Reach::Any,
    ),
    hidden(
        "query logAnalysis",
        SELLER_READERS,
        Reach::Own(MARKET_CROSS),
    ),
    row("query sellerAnalyses", SELLER_READERS, Reach::Any),
    row("query sellerProfile", SELLER_READERS, Reach::Any),
    row("subscription logAnalyses", SELLER_READERS, Reach::Any),
    hidden(
        "GET /npe/log-marketplace/analyses/{analysis_id}",
        SELLER_READERS,
        Reach::Own(MARKET_CROSS),
    ),
    row(
        "GET /npe/log-marketplace/sellers/{seller}",
        SELLER_READERS,
        Reach::Any,
    ),
    row(
        "GET /npe/log-marketplace/sellers/{seller}/analyses",
        SELLER_READERS,
        Reach::Any,
    ),
    row(
        "GET /npe/log-marketplace/sellers/{seller}/payments",
        SELLER_READERS,
        Reach::Any,
    ),
    hidden(
        "mutation recordInsightFeedback",
        &[Seller, Reviewer, Admin],
        Reach::Own(&[Reviewer, Admin]),
    ),
    hidden(
        "POST /npe/log-marketplace/analyses/{analysis_id}/feedback",
        &[Seller, Reviewer, Admin],
        Reach::Own(&[Reviewer, Admin]),
    ),
    // A seller pays itself only with its signature; its tenant's operators pay sellers without
    // an approved key; platform operators pay platform sellers only.
    hidden(
        "mutation payLogAnalysis",
        &[Finance, Admin],
        Reach::Own(&[]),
    ),
    hidden(
        "POST /npe/log-marketplace/pay/{analysis_id}",
        &[Finance, Admin],
        Reach::Own(&[]),
    ),
    // A seller's own key waits for an operator's approval; registered last (see above).
    row("mutation approveSellerKey", &[Finance, Admin], Reach::Any),
    row(
        "POST /npe/log-marketplace/sellers/{seller}/key/approve",
        &[Finance, Admin],
        Reach::Any,
    ),
    // The seller registers (pending approval); its tenant's operators set one at once.
    row(
        "mutation registerSellerKey",
        &[Seller, Finance, Admin],
        Reach::Any,
    ),
    row(
        "POST /npe/log-marketplace/sellers/{seller}/key",
        &[Seller, Finance, Admin],
        Reach::Any,
    ),
    // The capsule registry: authors (and admins) submit and retire their own capsules, platform
    // reviewers review, every key reads the catalogue; the manifest schema is public.
    row("query capsule", ALL, Reach::Any),
    row("query capsules", ALL, Reach::Any),
    row("query verifyCapsule", ALL, Reach::Any),
    row(
        "query reviewQueue",
        &[Reviewer, Auditor, Admin],
        Reach::Platform,
    ),
    row("mutation registerCapsuleKey", &[Author, Admin], Reach::Any),
    row("mutation submitCapsule", &[Author, Admin], Reach::Any),
    row(
        "mutation reviewCapsuleVersion",
        &[Reviewer],
        Reach::Platform,
    ),
    row(
        "mutation deprecateCapsuleVersion",
        &[Author, Admin],
        Reach::Any,
    ),
    row("mutation yankCapsuleVersion", &[Author, Admin], Reach::Any),
    row(
        "POST /v1/marketplace/capsules/submit",
        &[Author, Admin],
        Reach::Any,
    ),
    row("GET /v1/marketplace/capsules", ALL, Reach::Any),
    row("GET /v1/marketplace/capsules/{name}", ALL, Reach::Any),
    row(
        "GET /v1/marketplace/capsules/{name}/{version}/sbom",
        ALL,
        Reach::Any,
    ),
    row("GET /schemas/capsule-manifest/v1.json", &[], Reach::Public),
    // Installs: every key installs for its own principal (tenant installs are for admins,
    // checked in capsule_installs.rs).
    row("query capsuleInstallations", ALL, Reach::Any),
    row("mutation installCapsule", ALL, Reach::Any),
    row("mutation upgradeCapsule", ALL, Reach::Any),
    row("mutation uninstallCapsule", ALL, Reach::Any),
    row(
        "POST /v1/marketplace/capsules/{name}/install",
        ALL,
        Reach::Any,
    ),
    row(
        "POST /v1/marketplace/capsules/{name}/upgrade",
        ALL,
        Reach::Any,
    ),
    row(
        "DELETE /v1/marketplace/capsules/{name}/install",
        ALL,
        Reach::Any,
    ),
    row("GET /v1/marketplace/installations", ALL, Reach::Any),
    // Reviews: any key writes its own (the installer rule is the aggregate's) and votes;
    // platform reviewers moderate.
    row("query capsuleReviews", ALL, Reach::Any),
    // Search: any key.
    row("query searchCapsules", ALL, Reach::Any),
    // Collections: any key makes and edits its own (ownership is the aggregate's); platform
    // admins feature.
    row("query capsuleCollections", ALL, Reach::Any),
    row("query capsuleCollection", ALL, Reach::Any),
    row("query trendingCapsules", ALL, Reach::Any),
    row("mutation createCapsuleCollection", ALL, Reach::Any),
    row("mutation addCapsuleToCollection", ALL, Reach::Any),
    row("mutation removeCapsuleFromCollection", ALL, Reach::Any),
    row("mutation renameCapsuleCollection", ALL, Reach::Any),
    row(
        "mutation featureCapsuleCollection",
        &[Admin],
        Reach::Platform,
    ),
    row("POST /v1/marketplace/collections", ALL, Reach::Any),
    row("GET /v1/marketplace/collections", ALL, Reach::Any),
    row("GET /v1/marketplace/collections/{id}", ALL, Reach::Any),
    row("PATCH /v1/marketplace/collections/{id}", ALL, Reach::Any),
    row(
        "POST /v1/marketplace/collections/{id}/capsules",
        ALL,
        Reach::Any,
    ),
    row(
        "DELETE /v1/marketplace/collections/{id}/capsules/{name}",
        ALL,
        Reach::Any,
    ),
    row(
        "POST /v1/marketplace/collections/{id}/featured",
        &[Admin],
        Reach::Platform,
    ),
    row("GET /v1/marketplace/trending", ALL, Reach::Any),
    // Executions: any key reports its tenant's agents' runs.
    row("POST /v1/agents/{agent_id}/executions", ALL, Reach::Any),
    row("mutation reportExecutions", ALL, Reach::Any),
    // Erasure: tenant admins for their own tenant (platform admins name one).
    row("mutation eraseDataSubject", &[Admin], Reach::Any),
    row("mutation writeCapsuleReview", ALL, Reach::Any),
    row("mutation voteCapsuleReview", ALL, Reach::Any),
    row(
        "mutation moderateCapsuleReview",
        &[Reviewer],
        Reach::Platform,
    ),
    row(
        "POST /v1/marketplace/capsules/{name}/reviews",
        ALL,
        Reach::Any,
    ),
    row(
        "GET /v1/marketplace/capsules/{name}/reviews",
        ALL,
        Reach::Any,
    ),
    row(
        "POST /v1/marketplace/capsules/{name}/reviews/{author}/votes",
        ALL,
        Reach::Any,
    ),
    row(
        "POST /v1/marketplace/capsules/{name}/reviews/{author}/moderation",
        &[Reviewer],
        Reach::Platform,
    ),
    // Public: health, metrics, documents, the query page and the GraphQL endpoints themselves
    // (every field checks its caller).
    row("GET /", &[], Reach::Public),
    row("GET /graphiql", &[], Reach::Public),
    row("GET /graphql", &[], Reach::Public),
    row("POST /graphql", &[], Reach::Public),
    row("GET /graphql/ws", &[], Reach::Public),
    row("GET /healthz", &[], Reach::Public),
    row("GET /readyz", &[], Reach::Public),
    row("GET /metrics", &[], Reach::Public),
    row("GET /openapi.json", &[], Reach::Public),
];

fn allowed(row: &Row, role: Role, scope: KeyScope) -> bool {
    match row.reach {
        Reach::Public => true,
        _ if !row.roles.contains(&role) => false,
        Reach::Any => true,
        Reach::Own(cross) => match scope {
            KeyScope::Target => true,
            KeyScope::OtherTenant => false,
            KeyScope::Platform => cross.contains(&role),
        },
        Reach::Platform => scope == KeyScope::Platform,
    }
}

/// What the server made of one call.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Denied,
}

/// Ids the calls refer to, made by the bootstrap admin.
struct Fixture {
    task: String,
    competition: String,
    analysis: String,
}

fn tenant_of(scope: KeyScope) -> &'static str {
    match scope {
        KeyScope::Target => TARGET,
        KeyScope::OtherTenant => OTHER,
        KeyScope::Platform => "platform",
    }
}

async fn make_key(s: &TestServer, role: Role, tenant: &str) -> String {
    let r = s
        .graphql(
            Some(&s.admin_token),
            "mutation($r: String!, $t: String!, $k: String!) {
               createApiKey(input: {principal: \"sub-pkp-matrix\", role: $r, tenant: $t}, idempotencyKey: $k) { token } }",
            json!({"r": role.as_str(), "t": tenant, "k": format!("matrix-{}-{tenant}", role.as_str())}),
        )
        .await;
    r["data"]["createApiKey"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("key {role:?}@{tenant}: {r}"))
        .to_owned()
}

/// The GraphQL document and variables that exercise `field` against the target tenant.
fn graphql_call(field: &str, f: &Fixture, n: usize) -> (String, Value) {
    let k = format!("m-{n}");
    let series = json!({"values": demo_series().values, "seasonLength": 12});
    let entry = json!({"entryId": format!("matrix-{n}"), "memo": "matrix", "postings": [
        {"account": "platform:funding", "amount": "1.00"},
        {"account": "seller:matrix:payable", "amount": "-1.00"}]});
    let log = "2025-01-01 ERROR payment failed: NullPointerException at Billing.java:42\n";
    let (doc, vars) = match field {
        "me" => ("{ me { role } }", json!({})),
        "ledgerPublicKey" => ("{ ledgerPublicKey }", json!({})),
        "events" => ("{ events(first: 1) { edges { cursor } } }", json!({})),
        "ledgerBalance" => ("{ ledgerBalance(account: \"platform:funding\") { posted } }", json!({})),
        "ledgerHistory" => ("{ ledgerHistory(account: \"platform:funding\", first: 1) { edges { cursor } } }", json!({})),
        "ledgerAccounts" => ("{ ledgerAccounts(first: 1) { edges { cursor } } }", json!({})),
        "ledgerBalanceAsOf" => ("{ ledgerBalanceAsOf(account: \"platform:funding\", at: \"2030-01-01T00:00:00Z\") }", json!({})),
        "projections" => ("{ projections { name } }", json!({})),
        "parkedEvents" => ("{ parkedEvents { id } }", json!({})),
        "retryParkedEvent" => ("mutation($k: String) { retryParkedEvent(id: \"999999\", idempotencyKey: $k) { id } }", json!({"k": k})),
        "skipParkedEvent" => ("mutation($k: String) { skipParkedEvent(id: \"999999\", reason: \"matrix\", idempotencyKey: $k) { id } }", json!({"k": k})),
        "recordJournalEntry" => ("mutation($i: JournalEntryInput!, $k: String) { recordJournalEntry(input: $i, idempotencyKey: $k) { status } }", json!({"i": entry, "k": k})),
        "placeHold" => ("mutation($i: JournalEntryInput!, $k: String) { placeHold(input: $i, idempotencyKey: $k) { status } }", json!({"i": entry, "k": k})),
        "postHold" => ("mutation($k: String) { postHold(entryId: \"no-such-hold\", idempotencyKey: $k) { status } }", json!({"k": k})),
        "voidHold" => ("mutation($k: String) { voidHold(entryId: \"no-such-hold\", reason: \"matrix\", idempotencyKey: $k) { status } }", json!({"k": k})),
        "apiKeys" => ("query($t: String) { apiKeys(tenant: $t, first: 5) { id } }", json!({"t": TARGET})),
        "createApiKey" => ("mutation($k: String) { createApiKey(input: {principal: \"made\", role: \"client\", tenant: \"acme\"}, idempotencyKey: $k) { id } }", json!({"k": k})),
        "revokeApiKey" => ("mutation($id: String!, $k: String) { revokeApiKey(id: $id, idempotencyKey: $k) }", json!({"k": k})),
        "lapverseTenant" => ("{ lapverseTenant(id: \"acme\") { id } }", json!({})),
        "lapverseTenants" => ("{ lapverseTenants }", json!({})),
        "task" => ("query($id: String!) { task(id: $id) { id } }", json!({"id": f.task})),
        "competition" => ("query($id: String!) { competition(id: $id) { id } }", json!({"id": f.competition})),
        "tasks" => ("{ tasks(tenant: \"acme\") { id } }", json!({})),
        "competitions" => ("{ competitions(tenant: \"acme\") { id } }", json!({})),
        "chargeback" => ("{ chargeback(tenant: \"acme\") { amount } }", json!({})),
        "webhookDeliveries" => ("{ webhookDeliveries(tenant: \"acme\") { id } }", json!({})),
        "registerTenant" => ("mutation($k: String) { registerTenant(input: {id: \"acme\", name: \"Acme\", mrr: \"1.00\", costCenter: \"ops\"}, idempotencyKey: $k) { id } }", json!({"k": k})),
        "updateTenant" => ("mutation($k: String) { updateTenant(id: \"acme\", input: {costCenter: \"general\"}, idempotencyKey: $k) { id } }", json!({"k": k})),
        "setTenantFlag" => ("mutation($k: String) { setTenantFlag(tenant: \"acme\", flag: \"matrix.flag\", enabled: true, rolloutPercent: 100, idempotencyKey: $k) { id } }", json!({"k": k})),
        "removeTenantFlag" => ("mutation($k: String) { removeTenantFlag(tenant: \"acme\", flag: \"matrix.flag\", idempotencyKey: $k) { id } }", json!({"k": k})),
        "registerWebhook" => ("mutation($k: String) { registerWebhook(tenant: \"acme\", id: \"mw\", url: \"https://hooks.example.com/m\", events: [\"competition_completed\"], idempotencyKey: $k) { id } }", json!({"k": k})),
        "removeWebhook" => ("mutation($k: String) { removeWebhook(tenant: \"acme\", id: \"mw\", idempotencyKey: $k) { id } }", json!({"k": k})),
        "setTenantSeries" => ("mutation($s: SeriesInputGql!, $k: String) { setTenantSeries(tenant: \"acme\", series: $s, idempotencyKey: $k) { id } }", json!({"s": series, "k": k})),
        "submitTask" => ("mutation($k: String) { submitTask(tenant: \"acme\", input: {taskType: \"LOG_ANALYSIS\", description: \"matrix\", log: \"ERROR x\"}, idempotencyKey: $k) { id } }", json!({"k": k})),
        "launchCompetition" => ("mutation($k: String) { launchCompetition(tenant: \"acme\", input: {content: \"matrix\"}, idempotencyKey: $k) { id } }", json!({"k": k})),
        "logMarketDashboard" => ("{ logMarketDashboard { totalAnalyses } }", json!({})),
        "logMarketPricing" => ("{ logMarketPricing { basePrice } }", json!({})),
        "logMarketAgents" => ("{ logMarketAgents { name } }", json!({})),
        "logMarketTopEarners" => ("{ logMarketTopEarners { rank } }", json!({})),
        "logMarketLeaderboard" => ("{ logMarketLeaderboard { rank } }", json!({})),
        "logMarketQualityTrends" => ("{ logMarketQualityTrends { recommendations } }", json!({})),
        "analyzeLog" => ("mutation($l: String!, $k: String) { analyzeLog(input: {source: \"runtime\", logContent: $l, subPKPId: \"sub-pkp-matrix\"}, idempotencyKey: $k) { id } }", json!({"l": log, "k": k})),
        "batchAnalyzeLogs" => ("mutation($l: String!, $k: String) { batchAnalyzeLogs(subPKPId: \"sub-pkp-matrix\", logs: [{source: \"runtime\", content: $l}], idempotencyKey: $k) { totalLogs } }", json!({"l": log, "k": k})),
        "simulateLogs" => ("mutation($k: String) { simulateLogs(subPKPId: \"sub-pkp-matrix\", iterations: 1, idempotencyKey: $k) { iterations } }", json!({"k": k})),
        "logAnalysis" => ("query($id: String!) { logAnalysis(id: $id) { id } }", json!({"id": f.analysis})),
        "sellerAnalyses" => ("{ sellerAnalyses(subPKPId: \"sub-pkp-matrix\") { id } }", json!({})),
        "sellerProfile" => ("{ sellerProfile(subPKPId: \"sub-pkp-matrix\") { subPKPId } }", json!({})),
        "recordInsightFeedback" => ("mutation($id: String!, $k: String) { recordInsightFeedback(analysisId: $id, insightIndex: 0, verdict: \"confirmed\", idempotencyKey: $k) }", json!({"id": f.analysis, "k": k})),
        "payLogAnalysis" => ("mutation($id: String!, $k: String) { payLogAnalysis(analysisId: $id, subPKPId: \"sub-pkp-matrix\", idempotencyKey: $k) { transactionId } }", json!({"id": f.analysis, "k": k})),
        "approveSellerKey" => ("mutation($k: String) { approveSellerKey(subPKPId: \"sub-pkp-matrix\", publicKey: \"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\", idempotencyKey: $k) }", json!({"k": k})),
        "registerSellerKey" => ("mutation($k: String) { registerSellerKey(subPKPId: \"sub-pkp-matrix\", publicKey: \"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\", idempotencyKey: $k) }", json!({"k": k})),
        "capsule" => ("{ capsule(name: \"matrix-capsule\") { capsule { name } } }", json!({})),
        "capsules" => ("{ capsules(q: \"matrix\") { name } }", json!({})),
        "verifyCapsule" => ("{ verifyCapsule(name: \"matrix-capsule\", version: \"1.0.0\") { ok } }", json!({})),
        "reviewQueue" => ("{ reviewQueue { name } }", json!({})),
        "registerCapsuleKey" => ("mutation($k: String) { registerCapsuleKey(publicKey: \"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\", idempotencyKey: $k) { keyid } }", json!({"k": k})),
        "submitCapsule" => ("mutation($k: String) { submitCapsule(input: {manifest: \"kind: nothing\", bundleBase64: \"\"}, idempotencyKey: $k) { status } }", json!({"k": k})),
        "reviewCapsuleVersion" => ("mutation($k: String) { reviewCapsuleVersion(name: \"matrix-capsule\", version: \"1.0.0\", decision: \"approve\", riskScore: \"0.1\", idempotencyKey: $k) { status } }", json!({"k": k})),
        "deprecateCapsuleVersion" => ("mutation($k: String) { deprecateCapsuleVersion(name: \"matrix-capsule\", version: \"1.0.0\", message: \"matrix\", idempotencyKey: $k) { status } }", json!({"k": k})),
        "yankCapsuleVersion" => ("mutation($k: String) { yankCapsuleVersion(name: \"matrix-capsule\", version: \"1.0.0\", reason: \"matrix\", idempotencyKey: $k) { status } }", json!({"k": k})),
        "capsuleInstallations" => ("{ capsuleInstallations { name } }", json!({})),
        "installCapsule" => ("mutation($k: String) { installCapsule(name: \"matrix-capsule\", idempotencyKey: $k) { version } }", json!({"k": k})),
        "upgradeCapsule" => ("mutation($k: String) { upgradeCapsule(name: \"matrix-capsule\", idempotencyKey: $k) { version } }", json!({"k": k})),
        "uninstallCapsule" => ("mutation($k: String) { uninstallCapsule(name: \"matrix-capsule\", idempotencyKey: $k) { version } }", json!({"k": k})),
        "capsuleReviews" => ("{ capsuleReviews(name: \"matrix-capsule\") { ratings } }", json!({})),
        "searchCapsules" => ("{ searchCapsules(q: \"matrix\") { next } }", json!({})),
        "capsuleCollections" => ("{ capsuleCollections { id } }", json!({})),
        "reportExecutions" => ("mutation($k: String) { reportExecutions(agentId: \"matrix-agent\", executions: [{executionId: \"m\"}], idempotencyKey: $k) { invalid } }", json!({"k": k})),
        "eraseDataSubject" => ("mutation($k: String) { eraseDataSubject(userId: \"matrix-user\", reason: \"matrix\", idempotencyKey: $k) { subject } }", json!({"k": k})),
        "capsuleCollection" => ("{ capsuleCollection(id: \"col-00000000-0000-0000-0000-000000000000\") { id } }", json!({})),
        "trendingCapsules" => ("{ trendingCapsules { name } }", json!({})),
        "createCapsuleCollection" => ("mutation($k: String) { createCapsuleCollection(title: \"matrix\", idempotencyKey: $k) { id } }", json!({"k": k})),
        "addCapsuleToCollection" => ("mutation($k: String) { addCapsuleToCollection(id: \"col-00000000-0000-0000-0000-000000000000\", name: \"matrix-capsule\", idempotencyKey: $k) { id } }", json!({"k": k})),
        "removeCapsuleFromCollection" => ("mutation($k: String) { removeCapsuleFromCollection(id: \"col-00000000-0000-0000-0000-000000000000\", name: \"matrix-capsule\", idempotencyKey: $k) { id } }", json!({"k": k})),
        "renameCapsuleCollection" => ("mutation($k: String) { renameCapsuleCollection(id: \"col-00000000-0000-0000-0000-000000000000\", title: \"m\", idempotencyKey: $k) { id } }", json!({"k": k})),
        "featureCapsuleCollection" => ("mutation($k: String) { featureCapsuleCollection(id: \"col-00000000-0000-0000-0000-000000000000\", featured: true, idempotencyKey: $k) { id } }", json!({"k": k})),
        "writeCapsuleReview" => ("mutation($k: String) { writeCapsuleReview(name: \"matrix-capsule\", stars: 4, idempotencyKey: $k) { stars } }", json!({"k": k})),
        "voteCapsuleReview" => ("mutation($k: String) { voteCapsuleReview(name: \"matrix-capsule\", author: \"acme/nobody\", helpful: true, idempotencyKey: $k) { helpful } }", json!({"k": k})),
        "moderateCapsuleReview" => ("mutation($k: String) { moderateCapsuleReview(name: \"matrix-capsule\", author: \"acme/nobody\", action: \"hide\", note: \"matrix\", idempotencyKey: $k) { hidden } }", json!({"k": k})),
        other => panic!("no call written for GraphQL field {other}: add one"),
    };
    (doc.to_owned(), vars)
}

/// The method, concrete path, headers and body that exercise a REST route.
fn rest_call(
    route: &str,
    f: &Fixture,
    n: usize,
) -> (String, String, Vec<(&'static str, String)>, String) {
    let (method, pattern) = route.split_once(' ').expect("METHOD /path");
    let path = pattern
        .replace(
            "{id}",
            if pattern.contains("self-compete") {
                &f.competition
            } else if pattern.contains("/collections/") {
                "col-00000000-0000-0000-0000-000000000000"
            } else {
                &f.task
            },
        )
        .replace("{analysis_id}", &f.analysis)
        .replace("{seller}", SELLER)
        .replace("{name}", "matrix-capsule")
        .replace("{agent_id}", "matrix-agent")
        .replace("{version}", "1.0.0");
    let path = if pattern.ends_with("/export") {
        format!("{path}?format=json")
    } else {
        path
    };
    let mut headers = vec![("content-type", "application/json".to_owned())];
    let log = "2025-01-01 ERROR payment failed: NullPointerException at Billing.java:42\n";
    let body = match pattern {
        "/api/v2/tasks" => {
            json!({"type": "LOG_ANALYSIS", "description": "matrix", "tenant": TARGET, "log": "ERROR x"})
        }
        "/api/v2/self-compete" => json!({"content": "matrix", "tenant": TARGET}),
        "/npe/log-marketplace/analyze" => {
            json!({"source": "runtime", "logContent": log, "subPKPId": SELLER})
        }
        "/npe/log-marketplace/batch-analyze" => {
            json!({"subPKPId": SELLER, "logs": [{"source": "runtime", "content": log}]})
        }
        "/npe/log-marketplace/simulate" => json!({"subPKPId": SELLER, "iterations": 1}),
        "/npe/log-marketplace/pay/{analysis_id}" => json!({"subPKPId": SELLER}),
        "/npe/log-marketplace/analyses/{analysis_id}/feedback" => {
            json!({"insightIndex": 0, "verdict": "confirmed"})
        }
        "/v1/marketplace/capsules/{name}/reviews" => json!({"rating": 4}),
        "/v1/marketplace/collections" => json!({"title": "matrix"}),
        "/v1/marketplace/collections/{id}" => json!({"title": "matrix"}),
        "/v1/marketplace/collections/{id}/capsules" => json!({"name": "matrix-capsule"}),
        "/v1/marketplace/collections/{id}/featured" => json!({"featured": true}),
        "/v1/marketplace/capsules/{name}/reviews/{author}/votes" => json!({"helpful": true}),
        "/v1/marketplace/capsules/{name}/reviews/{author}/moderation" => {
            json!({"action": "hide", "note": "matrix"})
        }
        "/npe/log-marketplace/sellers/{seller}/key"
        | "/npe/log-marketplace/sellers/{seller}/key/approve" => {
            json!({"publicKey": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"})
        }
        "/graphql" => json!({"query": "{ me { role } }"}),
        _ => Value::Null,
    };
    if pattern.starts_with("/api/") {
        headers.push(("x-tenant-id", TARGET.to_owned()));
        headers.push(("idempotency-key", format!("m-{n}")));
    } else if method == "POST" {
        headers.push(("idempotency-key", format!("m-{n}")));
    }
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    (method.to_owned(), path, headers, body)
}

fn graphql_outcome(row: &Row, r: &Value) -> Outcome {
    // A document the schema refuses says nothing about access: the matrix's call is wrong.
    let validation = r["errors"][0].get("path").is_none() && r["data"].is_null();
    if validation && error_code(r) == Some("BAD_USER_INPUT") {
        panic!("the matrix's call for {} does not validate: {r}", row.name);
    }
    match error_code(r) {
        Some("FORBIDDEN" | "UNAUTHENTICATED") => Outcome::Denied,
        Some("NOT_FOUND") if row.hidden => Outcome::Denied,
        _ if row.hidden
            && r["data"]
                .as_object()
                .is_some_and(|d| d.values().all(Value::is_null)) =>
        {
            Outcome::Denied
        }
        _ => Outcome::Allowed,
    }
}

fn rest_outcome(row: &Row, status: u16) -> Outcome {
    match status {
        401 | 403 => Outcome::Denied,
        404 if row.hidden => Outcome::Denied,
        _ => Outcome::Allowed,
    }
}

/// Every GraphQL root field, from the schema itself.
fn schema_fields() -> BTreeSet<String> {
    let sdl = agora_api::graphql::build_schema().sdl();
    let mut out = BTreeSet::new();
    for (kind, ty) in [
        ("query", "Query"),
        ("mutation", "Mutation"),
        ("subscription", "Subscription"),
    ] {
        let start = sdl
            .find(&format!("type {ty} {{"))
            .unwrap_or_else(|| panic!("no type {ty}"));
        let body = &sdl[start..];
        let body = &body[..body.find("\n}").expect("type end")];
        let mut in_description = false;
        for line in body.lines().skip(1) {
            // Root fields are indented once; arguments spread over lines are indented deeper;
            // descriptions sit between `"""` lines.
            let Some(rest) = line.strip_prefix('\t') else {
                continue;
            };
            if rest.trim_start().starts_with("\"\"\"") {
                let one_line = rest.trim().len() > 3 && rest.trim().ends_with("\"\"\"");
                if !one_line {
                    in_description = !in_description;
                }
                continue;
            }
            if in_description || rest.starts_with(['\t', ' ', '"', '#', ')']) || rest.is_empty() {
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(format!("{kind} {name}"));
            }
        }
    }
    out
}

/// Every route of the router (paths from its table, methods by probing: a method the route
/// does not take answers 405).
async fn router_routes(s: &TestServer) -> BTreeSet<String> {
    let router = agora_api::app::router(s.state.clone());
    let debug = format!("{router:?}");
    let start = debug.find("path_router").expect("path_router in Debug");
    let end = debug.find("fallback_router").unwrap_or(debug.len());
    let mut paths = BTreeSet::new();
    for piece in debug[start..end].split('"').skip(1).step_by(2) {
        if piece.starts_with('/') && !piece.contains("__private__") {
            paths.insert(piece.to_owned());
        }
    }
    assert!(paths.len() > 20, "too few routes found in {debug}");
    let mut out = BTreeSet::new();
    for path in paths {
        let concrete = path
            .replace("{id}", "probe")
            .replace("{analysis_id}", "probe")
            .replace("{seller}", "probe")
            .replace("{name}", "probe")
            .replace("{version}", "probe");
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let (status, _, _) = http_request_full(s.addr, method, &concrete, &[], "").await;
            if status != 405 {
                out.insert(format!("{method} {path}"));
            }
        }
    }
    out
}

async fn subscription_outcome(s: &TestServer, token: &str, field: &str) -> Outcome {
    let doc = match field {
        "events" => "subscription { events { globalPosition } }",
        "logAnalyses" => "subscription { logAnalyses { id } }",
        other => panic!("no call written for subscription {other}: add one"),
    };
    let ctx = s.request_context(token).await;
    let request = async_graphql::Request::new(doc)
        .data(ctx)
        .data(s.state.clone());
    let mut stream = s.state.schema.execute_stream(request);
    match tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        // A denied subscription ends at once with its error; an allowed one waits for events.
        Ok(Some(response)) => {
            let code = response.errors.first().and_then(|e| {
                e.extensions
                    .as_ref()
                    .and_then(|x| x.get("code"))
                    .map(|c| c.to_string())
            });
            match code.as_deref() {
                Some("\"FORBIDDEN\"" | "\"UNAUTHENTICATED\"") => Outcome::Denied,
                _ => Outcome::Allowed,
            }
        }
        Ok(None) | Err(_) => Outcome::Allowed,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_field_and_route_by_every_role_and_tenant() {
    let s = TestServer::start(TestStore::postgres().await).await;
    let admin = s.admin_token.clone();
    ensure_demo_tenant(&s.state.lapverse.service).await.unwrap();
    let r = s
        .graphql(
            Some(&admin),
            "mutation { registerTenant(input: {id: \"globex\", name: \"Globex\", mrr: \"50000.00\", costCenter: \"ops\"}, idempotencyKey: \"g\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["registerTenant"]["id"], OTHER, "{r}");

    // Completeness: a row for every field and route, and nothing else.
    let rows: BTreeSet<String> = TABLE.iter().map(|r| r.name.to_owned()).collect();
    assert_eq!(rows.len(), TABLE.len(), "a row appears twice");
    let mut surface = schema_fields();
    surface.extend(router_routes(&s).await);
    let missing: Vec<_> = surface.difference(&rows).collect();
    let stale: Vec<_> = rows.difference(&surface).collect();
    assert!(
        missing.is_empty(),
        "no row in the auth matrix for {missing:?}"
    );
    assert!(stale.is_empty(), "rows for what does not exist: {stale:?}");

    // Fixtures, made by the platform admin.
    let headers = |k: &str| {
        vec![
            ("content-type", "application/json".to_owned()),
            ("authorization", format!("Bearer {admin}")),
            ("x-tenant-id", TARGET.to_owned()),
            ("idempotency-key", k.to_owned()),
        ]
    };
    let body = json!({"type": "LOG_ANALYSIS", "description": "fixture", "tenant": TARGET, "log": "ERROR x"});
    let (_, _, t) = http_request_full(
        s.addr,
        "POST",
        "/api/v2/tasks",
        &headers("fx-task"),
        &body.to_string(),
    )
    .await;
    let body = json!({"content": "fixture", "tenant": TARGET});
    let (_, _, c) = http_request_full(
        s.addr,
        "POST",
        "/api/v2/self-compete",
        &headers("fx-round"),
        &body.to_string(),
    )
    .await;
    let mut keys = Vec::new();
    for scope in [KeyScope::Target, KeyScope::OtherTenant, KeyScope::Platform] {
        for role in Role::ALL {
            keys.push((role, scope, make_key(&s, role, tenant_of(scope)).await));
        }
    }
    // The analysis of acme's seller, made by acme's admin.
    let acme_admin = keys
        .iter()
        .find(|(r, sc, _)| *r == Admin && *sc == KeyScope::Target)
        .map(|(_, _, t)| t.clone())
        .expect("acme admin");
    let r = s
        .graphql(
            Some(&acme_admin),
            "mutation { analyzeLog(input: {source: \"runtime\", logContent: \"ERROR boom: NullPointerException at A.java:1\\n\", subPKPId: \"sub-pkp-matrix\"}, idempotencyKey: \"fx-analysis\") { id } }",
            json!({}),
        )
        .await;
    let fixture = Fixture {
        task: serde_json::from_str::<Value>(&t).unwrap()["taskId"]
            .as_str()
            .unwrap()
            .to_owned(),
        competition: serde_json::from_str::<Value>(&c).unwrap()["competitionId"]
            .as_str()
            .unwrap()
            .to_owned(),
        analysis: r["data"]["analyzeLog"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{r}"))
            .to_owned(),
    };

    let mut wrong = Vec::new();
    let mut n = 0;
    for row in TABLE {
        let (kind, name) = row.name.split_once(' ').expect("kind name");
        // Without a key: only public rows answer (GraphQL fields say UNAUTHENTICATED).
        let callers: Vec<(Option<Role>, KeyScope, Option<&str>)> =
            std::iter::once((None, KeyScope::Platform, None))
                .chain(
                    keys.iter()
                        .map(|(r, sc, t)| (Some(*r), *sc, Some(t.as_str()))),
                )
                .collect();
        for (role, scope, token) in callers {
            n += 1;
            let expected = match role {
                None => {
                    if matches!(row.reach, Reach::Public) {
                        Outcome::Allowed
                    } else {
                        Outcome::Denied
                    }
                }
                Some(role) if allowed(row, role, scope) => Outcome::Allowed,
                Some(_) => Outcome::Denied,
            };
            let got = match kind {
                "query" | "mutation" => {
                    let (doc, mut vars) = graphql_call(name, &fixture, n);
                    if name == "revokeApiKey" {
                        // A fresh target-tenant key to revoke each time.
                        let victim = s
                            .graphql(
                                Some(&admin),
                                "mutation($k: String) { createApiKey(input: {principal: \"victim\", role: \"client\", tenant: \"acme\"}, idempotencyKey: $k) { id } }",
                                json!({"k": format!("victim-{n}")}),
                            )
                            .await;
                        vars["id"] = victim["data"]["createApiKey"]["id"].clone();
                    }
                    let r = s.graphql(token, &doc, vars).await;
                    (graphql_outcome(row, &r), r.to_string())
                }
                "subscription" => (
                    subscription_outcome(&s, token.unwrap_or(""), name).await,
                    String::new(),
                ),
                _ => {
                    let (method, path, mut headers, body) = rest_call(row.name, &fixture, n);
                    if let Some(t) = token {
                        headers.push(("authorization", format!("Bearer {t}")));
                    }
                    let (status, _, text) =
                        http_request_full(s.addr, &method, &path, &headers, &body).await;
                    (
                        rest_outcome(row, status),
                        format!("{status} {}", text.chars().take(200).collect::<String>()),
                    )
                }
            };
            if got.0 != expected {
                wrong.push(format!(
                    "{} as {role:?} of {scope:?}: expected {expected:?}, got {:?}: {}",
                    row.name,
                    got.0,
                    got.1.chars().take(300).collect::<String>()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cells differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
