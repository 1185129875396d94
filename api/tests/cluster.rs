//! Three real `agora` processes on one PostgreSQL database under a mixed load (analyze + pay
//! and tasks over REST). The owner of every lease is killed with `kill -9` in turn: each piece
//! of background work is taken over by another process within the bound (the measured takeover
//! times are printed); afterwards nothing acknowledged is lost, nothing is applied or paid
//! twice, and every projection equals its rebuild.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agora_commands::store::LogPosition;
use agora_commands::{pgadmin, PoolSizes, Store, StoreLocation, StoredEvent};
use agora_projections::all_projections;
use agora_projections::rebuild::rebuild_and_compare;
use serde_json::{json, Value};

const PROCESSES: usize = 3;
const ADMIN_KEY: &str = "cluster-admin-key-0123456789";
const SEED: [u8; 32] = [7u8; 32];
const SELLER: &str = "sub-pkp-cluster";
/// The design's takeover bound; `AGORA_TEST_TAKEOVER_MS` raises it on a slow machine.
const TAKEOVER_BOUND_MS: u64 = 5_000;
/// Row lease of a running job (seconds): a job on a killed process is taken over after it.
const JOB_LEASE_SECONDS: &str = "2";
/// Times the owner of every lease is killed.
const KILL_ROUNDS: usize = 2;
/// Background work every process competes for (lease keys).
const EXPECTED_LEASES: usize = 18;
/// Generous deadline for start-up and for the load to settle.
const SETTLE: Duration = Duration::from_secs(60);

fn takeover_bound() -> Duration {
    let ms = std::env::var("AGORA_TEST_TAKEOVER_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(TAKEOVER_BOUND_MS);
    Duration::from_millis(ms)
}

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// One HTTP/1.1 request; the status code and body, `None` when the process does not answer.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    Some((code, body))
}

fn start(url: &str, dir: &Path, addr: SocketAddr, demo_tenant: bool) -> Child {
    let seed_hex: String = SEED.iter().map(|b| format!("{b:02x}")).collect();
    Command::new(env!("CARGO_BIN_EXE_agora"))
        .env("DATABASE_URL", url)
        .env("AGORA_DATA_DIR", dir)
        .env("AGORA_LISTEN", addr.to_string())
        .env("AGORA_LEDGER_SIGNING_KEY", seed_hex)
        .env("AGORA_API_TOKEN_SECRET", "ab".repeat(32))
        .env("AGORA_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)
        .env(
            "AGORA_DEMO_TENANT",
            if demo_tenant { "true" } else { "false" },
        )
        .env("AGORA_RATE_LIMIT_PER_MINUTE", "100000")
        .env("AGORA_LOGMARKET_RATE_LIMIT_PER_MINUTE", "100000")
        .env("AGORA_LOGMARKET_SUBMISSIONS_PER_HOUR", "100000")
        .env("LAPVERSE_LEASE_SECONDS", JOB_LEASE_SECONDS)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn agora")
}

fn wait_healthy(child: &mut Child, addr: SocketAddr) {
    let deadline = Instant::now() + SETTLE;
    while http(addr, "GET", "/healthz", &[], "").map(|r| r.0) != Some(200) {
        if let Ok(Some(exit)) = child.try_wait() {
            panic!("agora on {addr} exited: {exit:?}");
        }
        assert!(Instant::now() < deadline, "{addr} never became healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The leases `addr` says it holds (`None` when it does not answer).
fn leases_of(addr: SocketAddr) -> Option<Vec<String>> {
    let (_, body) = http(addr, "GET", "/readyz", &[], "")?;
    let v: Value = serde_json::from_str(&body).ok()?;
    v["leases"].as_array().map(|a| {
        a.iter()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect()
    })
}

/// Every lease held by the live processes, with its owner; panics if one is held twice.
fn owners(addrs: &[SocketAddr], alive: &[bool]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (i, addr) in addrs.iter().enumerate() {
        if !alive[i] {
            continue;
        }
        for key in leases_of(*addr).unwrap_or_default() {
            if let Some(other) = out.insert(key.clone(), i) {
                panic!("lease {key} held by processes {other} and {i} at once");
            }
        }
    }
    out
}

fn auth() -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".to_string()),
        ("authorization", format!("Bearer {ADMIN_KEY}")),
    ]
}

/// What the clients were told succeeded.
#[derive(Default)]
struct Acks {
    analyses: BTreeSet<String>,
    payments: BTreeSet<String>,
    tasks: BTreeSet<String>,
}

/// One client: analyze, pay, submit a task, over and over, against the processes in turn.
fn client(
    n: usize,
    addrs: Arc<Vec<SocketAddr>>,
    acks: Arc<Mutex<Acks>>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
) {
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        sent.fetch_add(1, Ordering::SeqCst);
        let addr = addrs[(n + i) % addrs.len()];
        let mut h = auth();
        h.push(("idempotency-key", format!("an-{n}-{i}")));
        let log = format!(
            "ERROR client {n} request {i} failed: connection reset by peer at worker-{n}-{i}.ts:{i}\n"
        );
        let body = json!({"source": "runtime", "logContent": log, "subPKPId": SELLER});
        let analyzed = http(
            addr,
            "POST",
            "/npe/log-marketplace/analyze",
            &h,
            &body.to_string(),
        );
        if let Some((200..=299, reply)) = analyzed {
            let reply: Value = serde_json::from_str(&reply).unwrap_or(Value::Null);
            if let Some(id) = reply["id"].as_str() {
                acks.lock().unwrap().analyses.insert(id.to_owned());
                let addr = addrs[(n + i + 1) % addrs.len()];
                let mut h = auth();
                h.push(("idempotency-key", format!("pay-{id}")));
                let body = json!({"subPKPId": SELLER}).to_string();
                let path = format!("/npe/log-marketplace/pay/{id}");
                if let Some((200..=299, _)) = http(addr, "POST", &path, &h, &body) {
                    acks.lock().unwrap().payments.insert(id.to_owned());
                }
            }
        }
        let addr = addrs[(n + i + 2) % addrs.len()];
        let mut h = auth();
        h.push(("x-tenant-id", "acme".to_string()));
        h.push(("idempotency-key", format!("task-{n}-{i}")));
        let body = json!({"type": "LOG_ANALYSIS", "description": format!("cluster {n}/{i}"),
                          "tenant": "acme", "log": format!("ERROR task {n} {i}\n")});
        if let Some((200..=299, reply)) = http(addr, "POST", "/api/v2/tasks", &h, &body.to_string())
        {
            let reply: Value = serde_json::from_str(&reply).unwrap_or(Value::Null);
            if let Some(id) = reply["taskId"].as_str() {
                acks.lock().unwrap().tasks.insert(id.to_owned());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn read_all(store: &Store) -> Vec<StoredEvent> {
    let head = store.head().await.unwrap().unwrap_or(LogPosition::START);
    let mut out = Vec::new();
    let mut after = LogPosition::START;
    let deadline = Instant::now() + SETTLE;
    while after < head {
        let batch = store.read_global(after, 1000).await.unwrap();
        match batch.last() {
            Some(last) => after = last.position,
            None => {
                assert!(Instant::now() < deadline, "head never readable");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        out.extend(batch);
    }
    out
}

/// Every checkpoint (projections and process managers) is at the head of the log.
async fn all_caught_up(store: &Store) -> bool {
    let Some(head) = store.head().await.unwrap() else {
        return true;
    };
    let behind: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM projection_checkpoints WHERE global_position < $1",
    )
    .bind(head.global_position)
    .fetch_one(store.read_models())
    .await
    .unwrap();
    behind == 0
}

/// Kills the processes however the test ends.
struct Reaper(Vec<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn kill_9(child: &mut Child) {
    child.kill().expect("kill -9");
    child.wait().expect("reap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_survive_kill_9_of_every_lease_owner() {
    let name = format!("agora_cluster_{}", uuid_like());
    let url = pgadmin::create_database(&admin_url(), &name)
        .await
        .expect("PostgreSQL at TEST_DATABASE_URL");
    let dirs: Vec<_> = (0..PROCESSES)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let addrs: Arc<Vec<SocketAddr>> = Arc::new((0..PROCESSES).map(|_| free_port()).collect());
    // The first process migrates and registers the demo tenant; then the others join.
    let mut reaper = Reaper(vec![start(&url, dirs[0].path(), addrs[0], true)]);
    let children = &mut reaper.0;
    wait_healthy(&mut children[0], addrs[0]);
    for i in 1..PROCESSES {
        children.push(start(&url, dirs[i].path(), addrs[i], false));
    }
    for (child, addr) in children.iter_mut().zip(addrs.iter()) {
        wait_healthy(child, *addr);
    }
    let mut alive = vec![true; PROCESSES];
    let deadline = Instant::now() + SETTLE;
    let all: BTreeSet<String> = loop {
        let held = owners(&addrs, &alive);
        if held.len() == EXPECTED_LEASES {
            break held.into_keys().collect();
        }
        assert!(Instant::now() < deadline, "leases never all held: {held:?}");
        std::thread::sleep(Duration::from_millis(100));
    };

    eprintln!("all {} leases held: {all:?}", all.len());
    let acks = Arc::new(Mutex::new(Acks::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..2)
        .map(|n| {
            let (addrs, acks, stop, sent) =
                (addrs.clone(), acks.clone(), stop.clone(), sent.clone());
            std::thread::spawn(move || client(n, addrs, acks, stop, sent))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));

    // Kill the owner of each lease in turn (a kill takes all the leases of its process).
    let bound = takeover_bound();
    let mut killed: BTreeMap<String, usize> = BTreeMap::new();
    let mut takeovers = Vec::new();
    let deadline = Instant::now() + SETTLE;
    while all
        .iter()
        .any(|k| killed.get(k).copied().unwrap_or(0) < KILL_ROUNDS)
    {
        assert!(Instant::now() < deadline, "kills did not cover every lease");
        let held = owners(&addrs, &alive);
        let Some((_, &victim)) = held
            .iter()
            .find(|(k, _)| killed.get(*k).copied().unwrap_or(0) < KILL_ROUNDS)
        else {
            eprintln!("waiting: held {held:?}, killed {killed:?}");
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        let lost: Vec<String> = held
            .iter()
            .filter(|(_, &o)| o == victim)
            .map(|(k, _)| k.clone())
            .collect();
        kill_9(&mut children[victim]);
        alive[victim] = false;
        let t0 = Instant::now();
        loop {
            let now = owners(&addrs, &alive);
            if lost.iter().all(|k| now.contains_key(k)) {
                break;
            }
            assert!(
                t0.elapsed() < SETTLE,
                "leases {lost:?} never taken over: {now:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = t0.elapsed();
        eprintln!(
            "killed process {victim} holding {} leases; taken over in {took:?}",
            lost.len()
        );
        takeovers.push(took);
        for k in lost {
            *killed.entry(k).or_insert(0) += 1;
        }
        children[victim] = start(&url, dirs[victim].path(), addrs[victim], false);
        wait_healthy(&mut children[victim], addrs[victim]);
        alive[victim] = true;
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    eprintln!(
        "takeovers {takeovers:?}; requests {}, acknowledged analyses {}, payments {}, tasks {}",
        sent.load(Ordering::SeqCst),
        acks.analyses.len(),
        acks.payments.len(),
        acks.tasks.len()
    );
    for took in &takeovers {
        assert!(*took <= bound, "a takeover took {took:?} (bound {bound:?})");
    }
    assert!(!acks.payments.is_empty() && !acks.tasks.is_empty());

    // Let the background work settle: every task finished, every checkpoint at the head.
    let store = Store::connect(
        &StoreLocation::Postgres { url: url.clone() },
        &PoolSizes::default(),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + SETTLE;
    let events = loop {
        let events = read_all(&store).await;
        let finished: BTreeSet<&str> = events
            .iter()
            .filter(|e| e.event_type == "TaskCompleted" || e.event_type == "TaskFailed")
            .map(|e| e.aggregate_id.as_str())
            .collect();
        let pending = acks
            .tasks
            .iter()
            .filter(|t| !finished.contains(t.as_str()))
            .count();
        if pending == 0 && all_caught_up(&store).await {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} tasks unfinished or checkpoints behind"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Nothing acknowledged is lost.
    let of = |aggregate: &str, kind: &str| -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for e in events
            .iter()
            .filter(|e| e.aggregate_type == aggregate && e.event_type == kind)
        {
            *m.entry(e.aggregate_id.clone()).or_insert(0) += 1;
        }
        m
    };
    let recorded = of("log_analysis", "LogAnalysisRecorded");
    let paid = of("log_analysis", "AnalysisPaid");
    for id in &acks.analyses {
        assert!(recorded.contains_key(id), "acknowledged analysis {id} lost");
    }
    for id in &acks.payments {
        assert!(paid.contains_key(id), "acknowledged payment of {id} lost");
    }
    let tasks: BTreeSet<&str> = events
        .iter()
        .filter(|e| acks.tasks.contains(&e.aggregate_id))
        .map(|e| e.aggregate_id.as_str())
        .collect();
    assert_eq!(
        tasks.len(),
        acks.tasks.len(),
        "an acknowledged task is lost"
    );

    // Nothing applied or paid twice.
    assert!(paid.values().all(|n| *n == 1), "an analysis paid twice");
    let mut per_stream: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for e in &events {
        if e.event_type == "EntryRecorded" || e.event_type.starts_with("Hold") {
            *per_stream
                .entry((
                    e.aggregate_type.clone(),
                    e.aggregate_id.clone(),
                    e.event_type.clone(),
                ))
                .or_insert(0) += 1;
        }
    }
    assert!(
        per_stream.values().all(|n| *n == 1),
        "a journal entry recorded twice"
    );
    for id in &acks.payments {
        let entry = agora_commands::logmarket::payment_entry_id(id);
        assert!(
            per_stream.keys().any(|(_, a, _)| *a == entry),
            "payment of {id} has no journal entry"
        );
    }
    let charges: Vec<String> = events
        .iter()
        .filter(|e| e.event_type == "CostCharged")
        .map(|e| e.payload.to_string())
        .collect();
    for id in &acks.tasks {
        let quoted = format!("\"{id}\"");
        let n = charges.iter().filter(|c| c.contains(&quoted)).count();
        assert_eq!(n, 1, "task {id} charged {n} times");
    }

    eprintln!("settled: {} events", events.len());
    // Every projection equals its rebuild.
    let key = Arc::new(ed25519_dalek::SigningKey::from_bytes(&SEED));
    for projection in all_projections(key) {
        let cmp = rebuild_and_compare(&store, projection.as_ref(), false)
            .await
            .unwrap();
        assert!(
            cmp.is_equal(),
            "{} differs from its rebuild: {cmp:#?}",
            projection.name()
        );
    }

    drop(reaper);
    store.close().await;
    let _ = pgadmin::drop_database(&admin_url(), &name).await;
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}_{}", std::process::id())
}

const RECORD_ENTRY: &str = "mutation($id: String!, $k: String) {
  recordJournalEntry(idempotencyKey: $k, input: {entryId: $id, memo: \"crash\", postings: [
    {account: \"platform:funding\", amount: \"1.00\"},
    {account: \"seller:crash:payable\", amount: \"-1.00\"}]}) { entryId status } }";
/// Acknowledged entries before the kill.
const ACKS_BEFORE_KILL: usize = 300;
/// Clients recording entries at once (so commits share group-commit batches).
const CRASH_CLIENTS: usize = 12;

/// Records `id` over GraphQL; true when the reply acknowledges it.
fn record_entry(addr: SocketAddr, id: &str) -> bool {
    let body = json!({"query": RECORD_ENTRY, "variables": {"id": id, "k": id}}).to_string();
    match http(addr, "POST", "/graphql", &auth(), &body) {
        Some((200, reply)) => {
            let reply: Value = serde_json::from_str(&reply).unwrap_or(Value::Null);
            reply["data"]["recordJournalEntry"]["entryId"].as_str() == Some(id)
        }
        _ => false,
    }
}

/// Many clients record journal entries through one process (commits grouped into shared
/// transactions) until it is killed with `kill -9`: every acknowledged entry is in the log
/// exactly once, and after a restart the same requests are answered without a second event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commits_lose_nothing_acknowledged_across_kill_9() {
    let name = format!("agora_crash_{}", uuid_like());
    let url = pgadmin::create_database(&admin_url(), &name)
        .await
        .expect("PostgreSQL at TEST_DATABASE_URL");
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let mut reaper = Reaper(vec![start(&url, dir.path(), addr, false)]);
    wait_healthy(&mut reaper.0[0], addr);
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CRASH_CLIENTS)
        .map(|n| {
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let id = format!("crash-{n}-{i}");
                    if record_entry(addr, &id) {
                        acked.lock().unwrap().insert(id);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let deadline = Instant::now() + SETTLE * 2;
    while acked.lock().unwrap().len() < ACKS_BEFORE_KILL {
        assert!(Instant::now() < deadline, "too few acknowledgements");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Killed while the clients are still sending: some commits are in flight.
    kill_9(&mut reaper.0[0]);
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let acked: BTreeSet<String> = acked.lock().unwrap().clone();
    let store = Store::connect(
        &StoreLocation::Postgres { url: url.clone() },
        &PoolSizes { write: 2, read: 2 },
    )
    .await
    .unwrap();
    let entries = |events: &[StoredEvent]| {
        let mut n: BTreeMap<String, usize> = BTreeMap::new();
        for e in events
            .iter()
            .filter(|e| e.aggregate_type == "journal_entry")
        {
            *n.entry(e.aggregate_id.clone()).or_default() += 1;
        }
        n
    };
    let stored = entries(&read_all(&store).await);
    for id in &acked {
        assert_eq!(stored.get(id), Some(&1), "acknowledged entry {id}");
    }
    assert!(stored.values().all(|n| *n == 1), "an entry stored twice");
    eprintln!(
        "kill -9 after {} acknowledged entries; {} in the log",
        acked.len(),
        stored.len()
    );
    // Restarted: the acknowledged requests, sent again with their keys, change nothing.
    reaper.0[0] = start(&url, dir.path(), addr, false);
    wait_healthy(&mut reaper.0[0], addr);
    for id in acked.iter().take(20) {
        assert!(record_entry(addr, id), "retry of {id} answered");
    }
    let after = entries(&read_all(&store).await);
    assert_eq!(after, stored, "retries wrote nothing");
    drop(reaper);
    store.close().await;
    let _ = pgadmin::drop_database(&admin_url(), &name).await;
}
