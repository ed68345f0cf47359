//! `reprise keys add` and the server's keys: a keys file holds SHA-256
//! hashes, names and scopes; a key is printed once, when it is made, and
//! never read from the command line. Without a keys file the server stays
//! on loopback unless told `--insecure`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use reprise_api::auth::{entry_toml, new_key, KeyRing, Scope};

use crate::args::{KeysCommand, ServeArgs};

pub fn run(command: &KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Add { name, scopes, file } => add(name, scopes, file),
    }
}

fn add(name: &str, scopes: &[String], file: &Path) -> anyhow::Result<()> {
    let scopes = scopes
        .iter()
        .map(|s| {
            Scope::parse(s.trim())
                .with_context(|| format!("--scopes: `{s}` is not one of read, write, admin"))
        })
        .collect::<anyhow::Result<BTreeSet<Scope>>>()?;
    if name.is_empty() {
        bail!("--name must not be empty");
    }
    let existing = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let (key, entry) = new_key(name, scopes);
    let updated = existing.clone() + &entry_toml(&entry);
    // The file must stay valid (names unique) before anything is written.
    KeyRing::parse(&updated).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .with_context(|| format!("opening {}", file.display()))?;
    out.write_all(entry_toml(&entry).as_bytes())?;
    out.sync_all()?;
    eprintln!(
        "key `{name}` added to {} (only its hash is stored; this is the one time it is shown):",
        file.display()
    );
    println!("{key}");
    Ok(())
}

/// The keys the server accepts, and the loopback rule without them.
pub fn server_keys(args: &ServeArgs) -> anyhow::Result<Option<KeyRing>> {
    match &args.keys {
        Some(path) => {
            let ring = KeyRing::load(path).map_err(anyhow::Error::msg)?;
            if ring.is_empty() {
                bail!("{} holds no key: add one with `reprise keys add`", path.display());
            }
            Ok(Some(ring))
        }
        None if args.listen.ip().is_loopback() => {
            tracing::info!(listen = %args.listen, "no keys file: access control is off, listening on loopback only");
            Ok(None)
        }
        None if args.insecure => {
            tracing::warn!(listen = %args.listen, "no keys file and --insecure: anyone who reaches this address may do anything");
            Ok(None)
        }
        None => bail!(
            "--listen {} is not a loopback address: give a keys file (--keys, made with `reprise keys add`) or --insecure",
            args.listen
        ),
    }
}
