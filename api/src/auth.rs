//! Access control (CONTRACT.md, "Access control"): API keys from a keys
//! file of SHA-256 hashes, names and scopes (`read`, `write`, `admin`);
//! clients send the key in `x-api-key`.
//!
//! Deny by default: the decision is made on the route the router matched
//! (its pattern and method), never on the raw request target, so `/%761/push`
//! or `//v1/push` need the same scope as `/v1/push`. Only the routes listed
//! in [`OPEN_ROUTES`] are open; a path no route matches needs a valid key
//! (then answers 404). 401 without a valid key, 403 with a key that lacks
//! the route's scope.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The header the key travels in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The routes anyone may call (`/metrics` unless closed with a flag).
pub const OPEN_ROUTES: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    // A replica's served-feature log: signed with the fleet's secret, not
    // keyed (`fleet.rs`).
    crate::fleet::SERVED_LOG_PATH,
    // The console's static files (its data comes from the API, with a key).
    "/ui",
    "/ui/",
    "/ui/{asset}",
];

/// What a key may do. `admin` does not imply the others: a key holds the
/// scopes it lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Online features, snapshots, recommendations, rank, models,
    /// experiments, alerts, reports, runs.
    Read,
    /// Push and events.
    Write,
    /// Promote, rollback, define experiments, retrain, acknowledge alerts,
    /// run validation.
    Admin,
}

impl Scope {
    pub fn parse(name: &str) -> Option<Scope> {
        match name {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// The routes that write data (`write`); every other non-GET route is
/// `admin`, every other GET route `read`, except the reads that take a body.
const WRITE_ROUTES: &[&str] = &["/v1/push", "/v1/events"];
const READ_POSTS: &[&str] = &[
    "/v1/online-features",
    "/v1/snapshots",
    "/v1/recommendations",
    "/v1/rank",
];

/// Routes any valid key may call, whatever its scopes (they count as reads
/// for admission): the console asks who the key is before it knows.
pub const ANY_KEY_ROUTES: &[&str] = &["/v1/whoami"];

/// The scope the key of a request for `pattern` must hold once it needs
/// `scope`: `None` (any valid key) for [`ANY_KEY_ROUTES`] and for a path no
/// route matches (which answers 404).
pub fn key_scope(pattern: Option<&str>, scope: Scope) -> Option<Scope> {
    match pattern {
        Some(p) if !ANY_KEY_ROUTES.contains(&p) => Some(scope),
        _ => None,
    }
}

/// The scope a request for `pattern` (the matched route's pattern, `None`
/// when no route matched) with `method` needs; `None` when the route is
/// open. (A path no route matches needs a valid key of any scope; it counts
/// as a read for admission.)
pub fn required_scope(method: &str, pattern: Option<&str>, metrics_open: bool) -> Option<Scope> {
    let Some(pattern) = pattern else {
        return Some(Scope::Read);
    };
    if OPEN_ROUTES.contains(&pattern) && (pattern != "/metrics" || metrics_open) {
        return None;
    }
    Some(if WRITE_ROUTES.contains(&pattern) {
        Scope::Write
    } else if method == "GET" || READ_POSTS.contains(&pattern) {
        Scope::Read
    } else {
        Scope::Admin
    })
}

/// One key of the keys file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyEntry {
    pub name: String,
    /// Lower-case hex SHA-256 of the key's UTF-8 bytes.
    pub sha256: String,
    pub scopes: BTreeSet<Scope>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeysFile {
    #[serde(default)]
    key: Vec<KeyEntry>,
}

/// The keys a server accepts.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: Vec<([u8; 32], KeyEntry)>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No key, or one the ring does not hold: 401.
    Unauthenticated,
    /// A valid key without the scope: 403.
    Forbidden { key: String, scope: Scope },
}

impl KeyRing {
    /// Reads a keys file (TOML `[[key]]` tables of name, sha256, scopes).
    pub fn load(path: &Path) -> Result<KeyRing, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("keys file {}: {e}", path.display()))?;
        KeyRing::parse(&text).map_err(|e| format!("keys file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<KeyRing, String> {
        let file: KeysFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut keys = Vec::with_capacity(file.key.len());
        for (i, entry) in file.key.into_iter().enumerate() {
            let digest = decode_hex(&entry.sha256).ok_or_else(|| {
                format!(
                    "key[{i}] `{}`: sha256 must be 64 lower-case hex digits",
                    entry.name
                )
            })?;
            if entry.name.is_empty() || entry.scopes.is_empty() {
                return Err(format!("key[{i}]: needs a name and at least one scope"));
            }
            if keys
                .iter()
                .any(|(_, k): &(_, KeyEntry)| k.name == entry.name)
            {
                return Err(format!("key[{i}]: the name `{}` is taken", entry.name));
            }
            keys.push((digest, entry));
        }
        Ok(KeyRing { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The entry of the valid key `given` (the console asks for its
    /// scopes, to show only the actions the key may take).
    pub fn identify(&self, given: &[u8]) -> Option<&KeyEntry> {
        let name = self.authorize(Some(given), None).ok()?;
        self.keys
            .iter()
            .map(|(_, entry)| entry)
            .find(|entry| entry.name == name)
    }

    /// The name of the key `given` when it may use `scope`; `None`: any
    /// valid key (a path no route matches, which answers 404).
    pub fn authorize(&self, given: Option<&[u8]>, scope: Option<Scope>) -> Result<&str, Denied> {
        let digest: [u8; 32] = Sha256::digest(given.ok_or(Denied::Unauthenticated)?).into();
        // Every entry is compared, each in constant time.
        let found = self
            .keys
            .iter()
            .fold(None, |found, (hash, entry)| {
                if constant_time_eq(hash, &digest) {
                    Some(entry)
                } else {
                    found
                }
            })
            .ok_or(Denied::Unauthenticated)?;
        match scope {
            Some(scope) if !found.scopes.contains(&scope) => Err(Denied::Forbidden {
                key: found.name.clone(),
                scope,
            }),
            _ => Ok(&found.name),
        }
    }
}

/// A new random key (256 bits, hex) and its keys-file entry.
pub fn new_key(name: &str, scopes: BTreeSet<Scope>) -> (String, KeyEntry) {
    let bytes: [u8; 32] = rand::random();
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let entry = KeyEntry {
        name: name.to_owned(),
        sha256: sha256_hex(&key),
        scopes,
    };
    (key, entry)
}

/// The keys-file text of `entry` (appended to a keys file).
pub fn entry_toml(entry: &KeyEntry) -> String {
    let scopes: Vec<String> = entry
        .scopes
        .iter()
        .map(|s| format!("\"{}\"", s.name()))
        .collect();
    format!(
        "\n[[key]]\nname = {}\nsha256 = \"{}\"\nscopes = [{}]\n",
        toml::Value::String(entry.name.clone()),
        entry.sha256,
        scopes.join(", ")
    )
}

/// Lower-case hex SHA-256 of `key`'s UTF-8 bytes.
pub fn sha256_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::parse(&format!(
            "[[key]]\nname = \"trainer\"\nsha256 = \"{}\"\nscopes = [\"read\"]\n\n[[key]]\nname = \"ops\"\nsha256 = \"{}\"\nscopes = [\"read\", \"write\", \"admin\"]\n",
            sha256_hex("r-key"),
            sha256_hex("a-key")
        ))
        .unwrap()
    }

    #[test]
    fn keys_are_checked_by_hash_and_scope() {
        let ring = ring();
        assert_eq!(
            ring.authorize(Some(b"r-key"), Some(Scope::Read)),
            Ok("trainer")
        );
        assert_eq!(
            ring.authorize(Some(b"r-key"), Some(Scope::Write)),
            Err(Denied::Forbidden {
                key: "trainer".into(),
                scope: Scope::Write
            })
        );
        assert_eq!(
            ring.authorize(Some(b"a-key"), Some(Scope::Admin)),
            Ok("ops")
        );
        // An unrouted path: any valid key (then 404).
        assert_eq!(ring.authorize(Some(b"r-key"), None), Ok("trainer"));
        assert_eq!(
            ring.authorize(Some(b"r-key "), Some(Scope::Read)),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            ring.authorize(None, Some(Scope::Read)),
            Err(Denied::Unauthenticated)
        );
        // The stored hash itself is not a key.
        let hash = sha256_hex("r-key");
        assert_eq!(
            ring.authorize(Some(hash.as_bytes()), Some(Scope::Read)),
            Err(Denied::Unauthenticated)
        );
    }

    #[test]
    fn routes_need_their_scope_and_unknown_ones_a_key() {
        assert_eq!(required_scope("GET", Some("/healthz"), true), None);
        assert_eq!(required_scope("GET", Some("/metrics"), true), None);
        assert_eq!(
            required_scope("GET", Some("/metrics"), false),
            Some(Scope::Read)
        );
        assert_eq!(
            required_scope("POST", Some("/v1/push"), true),
            Some(Scope::Write)
        );
        assert_eq!(
            required_scope("POST", Some("/v1/events"), true),
            Some(Scope::Write)
        );
        assert_eq!(
            required_scope("POST", Some("/v1/rank"), true),
            Some(Scope::Read)
        );
        assert_eq!(
            required_scope("GET", Some("/v1/models"), true),
            Some(Scope::Read)
        );
        for admin in [
            "/v1/models/{version}/promote",
            "/v1/models/rollback",
            "/v1/retrain",
            "/v1/alerts/{id}/ack",
            "/v1/validation/run",
        ] {
            assert_eq!(
                required_scope("POST", Some(admin), true),
                Some(Scope::Admin)
            );
        }
        assert_eq!(
            required_scope("PUT", Some("/v1/experiments/{name}"), true),
            Some(Scope::Admin)
        );
        assert_eq!(required_scope("POST", None, true), Some(Scope::Read));
    }

    #[test]
    fn bad_files_are_explained_and_new_keys_round_trip() {
        for (text, message) in [
            (
                "[[key]]\nname = \"a\"\nsha256 = \"xyz\"\nscopes = [\"read\"]",
                "64 lower-case hex",
            ),
            (
                "[[key]]\nname = \"a\"\nsha256 = \"x\"\nscopes = [\"root\"]",
                "unknown variant",
            ),
            (
                &format!(
                    "[[key]]\nname = \"a\"\nsha256 = \"{}\"\nscopes = []",
                    sha256_hex("k")
                ),
                "at least one scope",
            ),
        ] {
            let err = KeyRing::parse(text).unwrap_err();
            assert!(err.contains(message), "{err}");
        }
        let (key, entry) = new_key("ci", [Scope::Write].into());
        assert_eq!(key.len(), 64);
        let ring = KeyRing::parse(&entry_toml(&entry)).unwrap();
        assert_eq!(
            ring.authorize(Some(key.as_bytes()), Some(Scope::Write)),
            Ok("ci")
        );
        assert!(
            !entry_toml(&entry).contains(&key),
            "only the hash is written"
        );
    }
}
