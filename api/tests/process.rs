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
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["kind"] == "event")
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

/// Runs `agora` with `data_dir` and no signing key in the environment; stdout and stderr.
fn auditor(data_dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("AGORA_LEDGER_SIGNING_KEY")
        .env("AGORA_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run agora");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// What is in a directory (names), to show a command created nothing.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// An auditor with only a backup of the database (or an export) and the ledger's public key:
/// a SQLite copy made with `VACUUM INTO` while the server runs verifies with `--public-key`
/// alone, and so does an export of it; a wrong key, a tampered export, an empty, missing or
/// foreign database are refused with a non-zero exit, and nothing (database, table, key file)
/// is ever created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_verifies_a_restored_backup_with_the_public_key_only() {
    let live = tempfile::tempdir().unwrap();
    let addr = free_port();
    let mut server = start(live.path(), addr);
    wait_for(addr, "/readyz", 200);
    let location = StoreLocation::Sqlite {
        path: live.path().join("agora.db"),
    };
    let store = Store::connect(&location, &PoolSizes::default())
        .await
        .unwrap();
    let bus = CommandBus::<JournalEntry>::new(&store, CommitSignal::new(), ());
    let meta = CommandMetadata::new("test", "t", Utc::now()).unwrap();
    for i in 0..COMMANDS {
        bus.execute(&format!("b-{i}"), command(i), &meta)
            .await
            .unwrap();
    }
    // Wait until the server has sealed everything, then back up while it keeps serving.
    let head = store.head().await.unwrap().unwrap().global_position;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sealed: Option<i64> = sqlx::query_scalar(
            "SELECT global_position FROM projection_checkpoints WHERE name = 'audit_seal'",
        )
        .fetch_optional(store.read_models())
        .await
        .unwrap();
        if sealed == Some(head) {
            break;
        }
        assert!(Instant::now() < deadline, "never sealed up to {head}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let restored = tempfile::tempdir().unwrap();
    let backup = restored.path().join("agora.db");
    sqlx::query(&format!("VACUUM INTO '{}'", backup.display()))
        .execute(store.read_models())
        .await
        .unwrap();
    let seed = std::fs::read_to_string(live.path().join("ledger-ed25519.seed")).unwrap();
    let seed: [u8; 32] = hex::decode(seed.trim()).unwrap().try_into().unwrap();
    let public = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes(),
    );
    server.kill().unwrap();
    server.wait().unwrap();
    store.close().await;

    // The restored copy, with the public key only (no key in the environment or the directory).
    let before = listing(restored.path());
    let (ok, out) = auditor(restored.path(), &["verify", "--public-key", &public]);
    assert!(ok, "{out}");
    assert!(out.contains("given on the command line"), "{out}");
    assert!(out.contains(&format!("verified {}", head)), "{out}");
    assert!(
        out.contains("signed checkpoints") && out.contains("OK"),
        "{out}"
    );
    // Without --public-key, the key recorded in the database is used, and said so.
    let (ok, out) = auditor(restored.path(), &["verify"]);
    assert!(ok && out.contains("recorded in the database"), "{out}");
    let other = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[3u8; 32])
            .verifying_key()
            .to_bytes(),
    );
    let (ok, out) = auditor(restored.path(), &["verify", "--public-key", &other]);
    assert!(!ok && out.contains("FAILED"), "{out}");
    let key_file = restored.path().join("public.key");
    std::fs::write(&key_file, &public).unwrap();

    // The export verifies with the public key only, anywhere; a changed line is named.
    let export = restored.path().join("log.jsonl");
    let (ok, out) = auditor(
        restored.path(),
        &["export", "--output", export.to_str().unwrap()],
    );
    assert!(ok, "{out}");
    let elsewhere = tempfile::tempdir().unwrap();
    let args = [
        "verify",
        "--export",
        export.to_str().unwrap(),
        "--public-key-file",
        key_file.to_str().unwrap(),
    ];
    let (ok, out) = auditor(elsewhere.path(), &args);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("verified {head} events and 1 signed")),
        "{out}"
    );
    let text = std::fs::read_to_string(&export).unwrap();
    std::fs::write(&export, text.replacen("payment 150", "payment 999", 1)).unwrap();
    let (ok, out) = auditor(elsewhere.path(), &args);
    assert!(!ok && out.contains("FAILED"), "{out}");
    assert!(listing(elsewhere.path()).is_empty(), "nothing created");
    let mut after = before.clone();
    after.extend(["log.jsonl".to_string(), "public.key".to_string()]);
    after.sort();
    let mut now = listing(restored.path());
    now.retain(|n| !n.ends_with("-wal") && !n.ends_with("-shm"));
    assert_eq!(now, after, "no key file or database was created");

    // Nothing to verify: a missing database, an empty (migrated) one, a foreign one.
    let empty = tempfile::tempdir().unwrap();
    for cmd in [&["verify", "--public-key", &public][..], &["export"][..]] {
        let (ok, out) = auditor(empty.path(), cmd);
        assert!(!ok && out.contains("no database"), "{out}");
    }
    assert!(
        listing(empty.path()).is_empty(),
        "{:?}",
        listing(empty.path())
    );
    let (ok, out) = auditor(empty.path(), &["migrate"]);
    assert!(ok, "{out}");
    let (ok, out) = auditor(empty.path(), &["verify", "--public-key", &public]);
    assert!(!ok && out.contains("empty"), "{out}");
    let foreign = tempfile::tempdir().unwrap();
    let path = foreign.path().join("agora.db");
    let other_db = Store::connect(
        &StoreLocation::Sqlite { path: path.clone() },
        &PoolSizes::default(),
    )
    .await
    .unwrap();
    sqlx::query("CREATE TABLE notes (x TEXT)")
        .execute(other_db.read_models())
        .await
        .unwrap();
    other_db.close().await;
    for cmd in [
        &["verify", "--public-key", &public][..],
        &["export"][..],
        &["replay", "--projection", "ledger"][..],
    ] {
        let (ok, out) = auditor(foreign.path(), cmd);
        assert!(!ok && out.contains("not an Agora database"), "{out}");
    }
    let tables = Store::connect(&StoreLocation::Sqlite { path }, &PoolSizes::default())
        .await
        .unwrap();
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(tables.read_models())
            .await
            .unwrap();
    assert_eq!(names, ["notes"], "no table was created");
    tables.close().await;
}

/// A listen address already taken fails start-up before anything is made: no key printed or
/// generated, no database created, and the error names the address.
#[test]
fn a_taken_listen_address_fails_before_anything_is_created() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_agora"))
        .env_remove("DATABASE_URL")
        .env("AGORA_DATA_DIR", dir.path())
        .env("AGORA_LISTEN", addr.to_string())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run agora");
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stdout.contains("API key"), "{stdout}");
    assert!(stderr.contains(&addr.to_string()), "{stderr}");
    let made: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(made.is_empty(), "created {made:?}");
}
