//! The real `agora` binary as a process on embedded SQLite: it starts with no database and no
//! environment, answers /healthz and /readyz, loses nothing committed across `kill -9`, its
//! projections resume and apply every event exactly once, and SIGTERM stops it cleanly.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agora_commands::{CommandBus, CommandMetadata, CommitSignal, PoolSizes, Store, StoreLocation};
use agora_domain::ledger::{AccountId, JournalEntry, LedgerCommand, Posting};
use agora_domain::money::{Currency, Money};
use chrono::Utc;

const COMMANDS: usize = 300;

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// `GET path` over plain HTTP/1.1; returns the status code and body.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    Some((code, body))
}

fn start(data_dir: &Path, addr: SocketAddr) -> Child {
    Command::new(env!("CARGO_BIN_EXE_agora"))
        .env_remove("DATABASE_URL")
        .env("AGORA_DATA_DIR", data_dir)
        .env("AGORA_LISTEN", addr.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn agora")
}

fn wait_for(addr: SocketAddr, path: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((code, _)) = http_get(addr, path) {
            if code == want {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{path} never answered {want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn command(i: usize) -> LedgerCommand {
    let amount = Money::from_cents(1 + i as i64).unwrap();
    LedgerCommand::Record {
        currency: Currency::usd(),
        postings: vec![
            Posting::new(
                AccountId::parse(&format!("seller:s{}:payable", i % 5)).unwrap(),
                amount.checked_neg().unwrap(),
            ),
            Posting::new(AccountId::marketplace_funding(), amount),
        ],
        memo: format!("payment {i}"),
        occurred_at: Utc::now(),
        balances: agora_domain::ledger::AccountBalances::none(),
    }
}

async fn checkpoint(store: &Store) -> Option<(i64, i64)> {
    sqlx::query_as(
        "SELECT global_position, events_applied FROM projection_checkpoints WHERE name = 'ledger'",
    )
    .fetch_optional(store.read_models())
    .await
    .ok()
    .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_kill_9_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let mut server = start(dir.path(), addr);
    wait_for(addr, "/healthz", 200);
    wait_for(addr, "/readyz", 200);

    // Another process (this test) commits to the same embedded database while the server's
    // projection runs, then the server is killed without warning.
    let location = StoreLocation::Sqlite {
        path: dir.path().join("agora.db"),
    };
    let store = Store::connect(&location, &PoolSizes::default())
        .await
        .unwrap();
    // The first start wrote its own events (the bootstrap admin key).
    let before = store.head().await.unwrap().map_or(0, |p| p.global_position) as usize;
    let bus = CommandBus::<JournalEntry>::new(&store, CommitSignal::new(), ());
    let meta = CommandMetadata::new("test", "t", Utc::now()).unwrap();
    for i in 0..COMMANDS {
        bus.execute(&format!("p-{i}"), command(i), &meta)
            .await
            .unwrap();
    }
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    let head = store.head().await.unwrap().unwrap().global_position;
    assert_eq!(
        head as usize,
        before + COMMANDS,
        "every committed event is in the log"
    );

    // Restarted, the projection resumes from its checkpoint and applies each event once.
    let mut server = start(dir.path(), addr);
    wait_for(addr, "/readyz", 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((pos, applied)) = checkpoint(&store).await {
            if pos == head {
                assert_eq!(
                    applied as usize,
                    before + COMMANDS,
                    "exactly once across the crash"
                );
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "projection did not catch up after restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let funding: String = sqlx::query_scalar(
        "SELECT posted FROM rm_ledger_balances WHERE account = 'platform:funding' AND currency = 'USD'",
    )
    .fetch_one(store.read_models())
    .await
    .unwrap();
    let expected: i64 = (1..=COMMANDS as i64).sum();
    assert_eq!(
        Money::parse(&funding).unwrap(),
        Money::from_cents(expected).unwrap()
    );

    // SIGTERM: graceful shutdown, exit status 0.
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = server.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "graceful exit, got {exit:?}");
    store.close().await;
}

fn agora(data_dir: &Path, seed_hex: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env("AGORA_DATA_DIR", data_dir)
        .env("AGORA_LEDGER_SIGNING_KEY", seed_hex)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run agora");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The auditor's commands on a real log: verify passes, replay is equal, export writes every
/// event with its seal; after one stored event is changed in the database, verify fails and
/// names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_replay_and_export_for_auditors() {
    use agora_projections::{all_projections, ProjectionRunner};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let seed = [9u8; 32];
    let seed_hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let location = StoreLocation::Sqlite {
        path: dir.path().join("agora.db"),
    };
    let store = Store::connect(&location, &PoolSizes::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let bus = CommandBus::<JournalEntry>::new(&store, CommitSignal::new(), ());
    let meta = CommandMetadata::new("test", "t", Utc::now()).unwrap();
    for i in 0..COMMANDS {
        bus.execute(&format!("p-{i}"), command(i), &meta)
            .await
            .unwrap();
    }
    let key = Arc::new(ed25519_dalek::SigningKey::from_bytes(&seed));
    for projection in all_projections(key) {
        let runner = ProjectionRunner::new(store.clone(), projection);
        runner.prepare().await.unwrap();
        runner.catch_up().await.unwrap();
    }

    let (ok, out) = agora(dir.path(), &seed_hex, &["verify"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("verified {COMMANDS} events")),
        "{out}"
    );
    for name in ["ledger", "audit_seal"] {
        let (ok, out) = agora(dir.path(), &seed_hex, &["replay", "--projection", name]);
        assert!(ok && out.contains("OK: equal"), "{out}");
    }
    assert!(!agora(dir.path(), &seed_hex, &["replay", "--projection", "nope"]).0);

    let file = dir.path().join("export.jsonl");
    let (ok, _) = agora(
        dir.path(),
        &seed_hex,
        &[
            "export",
            "--from",
            "100",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert!(ok);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), COMMANDS - 99);
    assert_eq!(lines[0]["global_position"], 100);
    assert!(lines
        .iter()
        .all(|l| l["seal"].as_str().is_some_and(|s| s.len() == 64)));

    sqlx::query("DROP TRIGGER events_immutable_update")
        .execute(store.read_models())
        .await
        .unwrap();
    sqlx::query("UPDATE events SET payload = REPLACE(payload, 'payment', 'forged') WHERE global_position = 150")
        .execute(store.read_models())
        .await
        .unwrap();
    let (ok, out) = agora(dir.path(), &seed_hex, &["verify"]);
    assert!(!ok, "verify must fail after tampering: {out}");
    assert!(
        out.contains("FAILED") && out.contains("global position 150"),
        "{out}"
    );
    store.close().await;
}
