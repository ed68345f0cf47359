//! `reprise`: the command line of the Reprise feature store.

mod args;
mod demo;
mod input;
mod progress;
mod push_cmd;
mod serve_cmd;
mod snapshot_cmd;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REPRISE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve_cmd::run(&cli.store, args),
        Command::Migrate => args::open_store(&cli.store).map(|_| ()),
        Command::Push(args) => push_cmd::run(&cli.store, args),
        Command::Snapshot(args) => snapshot_cmd::run(&cli.store, args),
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
