//! `reprise`: the command line of the Reprise feature store.

mod args;
mod backup_cmd;
mod demo;
mod drift_cmd;
mod export_cmd;
mod input;
mod keys_cmd;
mod progress;
mod push_cmd;
mod retrain_cmd;
mod serve_cmd;
mod snapshot_cmd;
mod telemetry;
mod train_cmd;

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{CommandFactory, Parser};

use args::{Cli, Command, ImportSource};

/// `reprise completions SHELL`: the script on stdout (a closed pipe, as
/// with `| head`, ends it quietly).
fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    use std::io::Write;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "reprise", &mut script);
    match std::io::stdout().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _telemetry = match telemetry::init(cli.otlp_endpoint.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => serve_cmd::run(&cli.store, *args),
        Command::Migrate => args::open_store(&cli.store).map(|_| ()),
        Command::Push(args) => push_cmd::run(&cli.store, args),
        Command::Snapshot(args) => snapshot_cmd::run(&cli.store, args),
        Command::Export(args) => export_cmd::run(&cli.store, args),
        Command::Import(ImportSource::Movielens { dir }) => {
            args::open_store(&cli.store).and_then(|store| train_cmd::import_movielens(&store, &dir))
        }
        Command::Train(args) => train_cmd::train(&cli.store, args),
        Command::Evaluate(args) => train_cmd::evaluate(&cli.store, args),
        Command::Drift(args) => drift_cmd::run(args),
        Command::Validate(args) => drift_cmd::validate(&cli.store, args),
        Command::ExportServed(args) => train_cmd::export_served(&cli.store, args),
        Command::Retrain(command) => retrain_cmd::run(&cli.store, command),
        Command::Keys(command) => keys_cmd::run(&command),
        Command::Completions { shell } => completions(shell),
        Command::Backup { out } => backup_cmd::backup(&cli.store, &out),
        Command::Restore { from } => backup_cmd::restore(&cli.store, &from),
        Command::Compact => backup_cmd::compact(&cli.store),
        Command::DemoData => {
            args::open_store(&cli.store).and_then(|store| demo::load(&store).map(|_| ()))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
