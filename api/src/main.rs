use agora_api::config::Config;
use agora_api::{bench, serve};
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
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Measure command throughput and projection lag (see docs/BENCHMARKS.md).
    Bench(bench::BenchArgs),
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
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve::serve(&config).await,
        Command::Migrate => migrate(&config).await,
        Command::Bench(args) => bench::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
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
