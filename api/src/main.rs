use agora_api::config::Config;
use agora_api::{audit_cli, bench, capsules, eval, parked_cli, serve};
use clap::{Parser, Subcommand};

/// Agora: an auditable marketplace ledger.
#[derive(Parser)]
#[command(name = "agora", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(serve::ServeArgs),
    /// Apply the database migrations and exit.
    Migrate,
    /// Measure command throughput and projection lag (see docs/BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// Recompute the audit seal chain and its signatures (from the database, read-only, or an
    /// export file) with the ledger's public key; exit 1 naming the first difference, or when
    /// there is nothing to verify.
    Verify(audit_cli::VerifyArgs),
    /// Rebuild a projection from position zero and compare it with the live one; exit 1 if
    /// they differ.
    Replay(audit_cli::ReplayArgs),
    /// Check a published capsule version offline (NAME@VERSION): re-hash its stored bundle and
    /// manifest and verify the author's and the platform's signatures from public keys; exit 1
    /// naming the reason on any difference.
    VerifyCapsule(capsules::cli::VerifyCapsuleArgs),
    /// Write the event log as JSON Lines, from a global position on.
    Export(audit_cli::ExportArgs),
    /// List, retry or skip events a projection or process manager parked.
    Parked(parked_cli::ParkedArgs),
    /// Score the log template miner on Loghub-2k (grouping accuracy, throughput), or with
    /// `--logchunks` the Error Detective's failure locator on LogChunks.
    EvalAnalysers(eval::EvalArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("agora: configuration error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    serve::init_tracing(config.log_format);
    let command = cli
        .command
        .unwrap_or_else(|| Command::Serve(serve::ServeArgs::default()));
    let result = match command {
        Command::Serve(args) => serve::serve(&config, &args).await.map(|()| true),
        Command::Migrate => migrate(&config).await.map(|()| true),
        Command::Bench(args) => bench::run(args).await.map(|()| true),
        Command::Verify(args) => audit_cli::verify(&config, &args).await,
        Command::Replay(args) => audit_cli::replay(&config, &args).await,
        Command::VerifyCapsule(args) => capsules::cli::run(&config, &args).await,
        Command::Export(args) => audit_cli::export(&config, &args).await.map(|()| true),
        Command::Parked(args) => parked_cli::run(&config, &args).await,
        Command::EvalAnalysers(args) => eval::run(&args),
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "agora failed");
            eprintln!("agora: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let store =
        agora_commands::Store::connect(&config.store, &agora_commands::PoolSizes::default())
            .await?;
    store.migrate().await?;
    println!("migrations applied to {}", config.store.redacted());
    store.close().await;
    Ok(())
}
