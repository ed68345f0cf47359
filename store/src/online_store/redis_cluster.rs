//! The online view on a Redis Cluster (the `redis` crate's cluster client).
//!
//! Layout, under a namespace `NS` (several stores may share a cluster):
//! - `NS:published`: the newest published store version;
//! - `NS:r:<hex online key>`: a hash from store version to the row written
//!   at it; a reader takes the newest version at or below the published
//!   one, and applying a row prunes those older than that (so a key holds
//!   the published row and at most an unpublished newer one);
//! - `NS:e:<hex group prefix>`: a sorted set of the group's events, scored
//!   by event time, each member the 20-byte history position (event time,
//!   store version, sequence) then the row; readers drop members of
//!   unpublished versions. Adding a member twice is a no-op, so re-applying
//!   a version is harmless;
//! - `NS:definitions` (the prost `Definitions` replicas build their
//!   registry from) and `NS:leader` (the leader's state, `LeaderState`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::cluster::{cluster_pipe, ClusterClient, ClusterClientBuilder, ClusterConnection};
use redis::{Commands, Script};

use crate::codec::{self, HistoryPosition};
use crate::error::{Result, StoreError};
use crate::row::RawRow;
use crate::time::Micros;

use prost::Message;

use super::{
    ChangeRecord, EventGroup, GroupEvents, LeaderState, OnlineChanges, OnlineStore,
    CHANGE_RECORDS_KEPT,
};
use crate::proto::Definitions;

/// Writes a row at its version, prunes the versions no reader needs, and
/// moves the key's expiry (its newest row's end of retention) later:
/// KEYS[1] the row key; ARGV version, row, published version, expiry (Unix
/// milliseconds, 0: none).
const APPLY_ROW: &str = r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local published = tonumber(ARGV[3])
local fields = redis.call('HKEYS', KEYS[1])
local newest_published = -1
for _, f in ipairs(fields) do
  local v = tonumber(f)
  if v <= published and v > newest_published then newest_published = v end
end
for _, f in ipairs(fields) do
  if tonumber(f) < newest_published then redis.call('HDEL', KEYS[1], f) end
end
local expire = tonumber(ARGV[4])
if expire > 0 then
  local current = redis.call('PEXPIRETIME', KEYS[1])
  if current < 0 or expire > current then redis.call('PEXPIREAT', KEYS[1], expire) end
end
return 1
";

/// Drops a group's events past its horizon (the widest window reading it,
/// within the source's retention) and lets the set
/// expire with its newest event: KEYS[1]; ARGV newest score to drop, expiry
/// (Unix milliseconds; only ever moved later).
const TRIM_EVENTS: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local expire = tonumber(ARGV[2])
local current = redis.call('PEXPIRETIME', KEYS[1])
if current == -1 or (current >= 0 and expire > current) then
  redis.call('PEXPIREAT', KEYS[1], expire)
end
return 1
";

/// Appends a change record to the stream KEYS[1] under the id
/// `<version>-0`, with the previous record's version, unless a record at
/// that version or a later one is there; keeps about ARGV[3] records:
/// ARGV version, encoded keys, records kept.
const RECORD_CHANGES: &str = r"
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local previous = '0'
if #last > 0 then previous = string.match(last[1][1], '^(%d+)') end
if tonumber(previous) >= tonumber(ARGV[1]) then return 0 end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], ARGV[1] .. '-0', 'previous', previous, 'keys', ARGV[2])
return 1
";

/// Raises the published version, never lowers it: KEYS[1], ARGV version.
const PUBLISH: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
";

fn redis_error(e: redis::RedisError) -> StoreError {
    StoreError::SharedStoreUnavailable(format!("redis: {e}"))
}

pub struct RedisClusterOnlineStore {
    namespace: String,
    /// A few connections (each to every master), so concurrent readers do
    /// not queue behind one another.
    client: ClusterClient,
    /// Replicas each master's writes must reach before a publication
    /// counts as done (0: the master's acknowledgement suffices).
    replicas: usize,
    connections: Vec<Mutex<Pooled>>,
    next: AtomicUsize,
    publish: Script,
    record: Script,
}

impl std::fmt::Debug for RedisClusterOnlineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClusterOnlineStore")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// One connection of the pool, and when it was last replaced.
struct Pooled {
    connection: ClusterConnection,
    reconnected: Option<Instant>,
}

/// A failed connection is replaced at most this often (while the cluster
/// is down, every command fails).
const RECONNECT_EVERY: Duration = Duration::from_millis(250);

/// How long a publication waits for replicas.
const WAIT_MILLIS: u64 = 2_000;

/// Connections per store.
const POOL: usize = 4;

impl RedisClusterOnlineStore {
    /// Connects to the cluster through `seeds` (`redis://host:port`, …).
    /// Commands fail within about a second rather than wait out a failover
    /// (the client's default retries wait minutes): a reader answers an
    /// error, a publisher retries its entry at the next round.
    pub fn connect(seeds: &[String], namespace: &str) -> Result<Self> {
        let client = ClusterClientBuilder::new(seeds.to_vec())
            .connection_timeout(Duration::from_millis(500))
            .response_timeout(Duration::from_secs(1))
            .retries(3)
            .min_retry_wait(50)
            .max_retry_wait(400)
            .build()
            .map_err(redis_error)?;
        let connections = (0..POOL)
            .map(|_| {
                client.get_connection().map(|connection| {
                    Mutex::new(Pooled {
                        connection,
                        reconnected: None,
                    })
                })
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(redis_error)?;
        Ok(RedisClusterOnlineStore {
            namespace: namespace.to_owned(),
            client,
            replicas: 0,
            connections,
            next: AtomicUsize::new(0),
            publish: Script::new(PUBLISH),
            record: Script::new(RECORD_CHANGES),
        })
    }

    /// Requires `replicas` replicas of every master to hold a publication
    /// before it counts as done ([`OnlineStore::await_replicas`]): Redis
    /// replicates asynchronously, so a failover can otherwise lose writes
    /// the master acknowledged.
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    fn published_key(&self) -> String {
        format!("{}:published", self.namespace)
    }

    fn definitions_key(&self) -> String {
        format!("{}:definitions", self.namespace)
    }

    fn changes_key(&self) -> String {
        format!("{}:changes", self.namespace)
    }

    fn leader_key(&self) -> String {
        format!("{}:leader", self.namespace)
    }

    fn row_key(&self, key: &[u8]) -> String {
        format!("{}:r:{}", self.namespace, hex(key))
    }

    fn events_key(&self, prefix: &[u8]) -> String {
        format!("{}:e:{}", self.namespace, hex(prefix))
    }

    /// Runs a read on a free connection of the pool (or the next one in
    /// turn). A connection that failed is replaced by a new one, which
    /// reads the slot map afresh: after a failover the cluster client would
    /// otherwise keep calling the master that died.
    fn run<T>(
        &self,
        op: impl FnOnce(&mut ClusterConnection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.connections.len();
        let guard = (1..=n)
            .find_map(|i| self.connections[(start + i) % n].try_lock().ok())
            .unwrap_or_else(|| crate::sync::lock(&self.connections[start % n]));
        self.on(guard, op)
    }

    /// Runs a write on the writer connection (the pool's first): `WAIT`
    /// counts the replicas that have a connection's writes, so the writes
    /// of a publication and its wait share one.
    fn write<T>(
        &self,
        op: impl FnOnce(&mut ClusterConnection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let guard = crate::sync::lock(&self.connections[0]);
        self.on(guard, op)
    }

    fn on<T>(
        &self,
        mut guard: std::sync::MutexGuard<'_, Pooled>,
        op: impl FnOnce(&mut ClusterConnection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        op(&mut guard.connection).map_err(|e| {
            let reconnect = !matches!(
                e.kind(),
                redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType
            ) && guard
                .reconnected
                .is_none_or(|t| t.elapsed() >= RECONNECT_EVERY);
            if reconnect {
                guard.reconnected = Some(Instant::now());
                match self.client.get_connection() {
                    Ok(fresh) => guard.connection = fresh,
                    Err(again) => {
                        tracing::debug!(error = %again, "reconnecting to the cluster failed")
                    }
                }
            }
            redis_error(e)
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl OnlineStore for RedisClusterOnlineStore {
    fn apply(&self, changes: &OnlineChanges) -> Result<()> {
        let published = self.published_version()?;
        if !changes.rows.is_empty() {
            // EVAL rather than the script's EVALSHA: a pipeline cannot load
            // a script a node lacks (a promoted replica), and Redis caches
            // the compiled script by its hash either way.
            let mut pipe = cluster_pipe();
            for (key, row) in &changes.rows {
                let retention = codec::key_view_id(key).map_or(0, |v| changes.retention_of(v));
                let expire_ms = if retention > 0 {
                    let event_ts = RawRow::decode(row, 0)?.event_ts;
                    event_ts.saturating_add(retention).max(1_000) / 1_000
                } else {
                    0
                };
                pipe.cmd("EVAL")
                    .arg(APPLY_ROW)
                    .arg(1)
                    .arg(self.row_key(key))
                    .arg(changes.version)
                    .arg(row.as_slice())
                    .arg(published)
                    .arg(expire_ms)
                    .ignore();
            }
            self.write(|c| pipe.query::<()>(c))?;
        }
        if !changes.events.is_empty() {
            let mut pipe = cluster_pipe();
            // The newest event of each group with a horizon.
            let mut newest: std::collections::HashMap<&[u8], (Micros, Micros)> =
                std::collections::HashMap::new();
            for (key, row) in &changes.events {
                let split = key
                    .len()
                    .checked_sub(HistoryPosition::LEN)
                    .ok_or_else(|| StoreError::Corrupt("short aggregation index key".into()))?;
                let (prefix, tail) = key.split_at(split);
                let position = codec::history_position(prefix, key)
                    .ok_or_else(|| StoreError::Corrupt("bad aggregation index key".into()))?;
                let mut member = tail.to_vec();
                member.extend_from_slice(row);
                pipe.zadd(self.events_key(prefix), member, position.event_ts as f64)
                    .ignore();
                let retention = changes.event_horizon_of(prefix);
                if retention > 0 {
                    let slot = newest.entry(prefix).or_insert((Micros::MIN, retention));
                    slot.0 = slot.0.max(position.event_ts);
                }
            }
            // Readers look back at most the horizon from now: what is
            // older than that, counted from the newest event or from now if
            // earlier (an event may be ahead of the clock), goes.
            let now = crate::time::now_micros();
            for (prefix, (newest_ts, retention)) in newest {
                pipe.cmd("EVAL")
                    .arg(TRIM_EVENTS)
                    .arg(1)
                    .arg(self.events_key(prefix))
                    .arg(newest_ts.min(now).saturating_sub(retention))
                    .arg(newest_ts.saturating_add(retention).max(1_000) / 1_000)
                    .ignore();
            }
            self.write(|c| pipe.query::<()>(c))?;
        }
        Ok(())
    }

    fn publish_version(&self, version: u64) -> Result<()> {
        self.write(|c| {
            self.publish
                .key(self.published_key())
                .arg(version)
                .invoke::<i64>(c)
        })?;
        Ok(())
    }

    fn await_replicas(&self) -> Result<()> {
        if self.replicas == 0 {
            return Ok(());
        }
        // Sent to every master; the answer is the fewest replicas any of
        // them reached.
        let reached: i64 = self.write(|c| {
            redis::cmd("WAIT")
                .arg(self.replicas)
                .arg(WAIT_MILLIS)
                .query(c)
        })?;
        if reached < self.replicas as i64 {
            return Err(StoreError::SharedStoreUnavailable(format!(
                "a master's writes reached {reached} of the {} replicas required (--online-store-replicas) within {WAIT_MILLIS} ms",
                self.replicas
            )));
        }
        Ok(())
    }

    fn publish_definitions(&self, definitions: &Definitions) -> Result<()> {
        self.write(|c| c.set::<_, _, ()>(self.definitions_key(), definitions.encode_to_vec()))
    }

    fn definitions(&self) -> Result<Option<Definitions>> {
        let bytes: Option<Vec<u8>> = self.run(|c| c.get(self.definitions_key()))?;
        bytes
            .map(|b| Definitions::decode(b.as_slice()).map_err(Into::into))
            .transpose()
    }

    fn set_leader_state(&self, state: &LeaderState) -> Result<()> {
        self.write(|c| c.set::<_, _, ()>(self.leader_key(), state.encode()))
    }

    fn leader_state(&self) -> Result<Option<LeaderState>> {
        let text: Option<String> = self.run(|c| c.get(self.leader_key()))?;
        Ok(text.as_deref().and_then(LeaderState::decode))
    }

    fn record_changes(&self, version: u64, keys: &[Vec<u8>], everything: bool) -> Result<()> {
        let record = ChangeRecord {
            keys: keys.to_vec(),
            everything,
            ..Default::default()
        };
        self.write(|c| {
            self.record
                .key(self.changes_key())
                .arg(version)
                .arg(record.encode_keys())
                .arg(CHANGE_RECORDS_KEPT)
                .invoke::<i64>(c)
        })?;
        Ok(())
    }

    fn changes_after(&self, after: u64, limit: usize) -> Result<Vec<ChangeRecord>> {
        // Ids are `<version>-0`: `<after>-1` is past `after`'s record.
        let reply: redis::streams::StreamRangeReply =
            self.run(|c| c.xrange_count(self.changes_key(), format!("{after}-1"), "+", limit))?;
        reply
            .ids
            .into_iter()
            .map(|entry| {
                let corrupt = || StoreError::Corrupt(format!("change record `{}`", entry.id));
                let version = entry
                    .id
                    .split('-')
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(corrupt)?;
                let previous: u64 = entry.get("previous").ok_or_else(corrupt)?;
                let bytes: Vec<u8> = entry.get("keys").ok_or_else(corrupt)?;
                let (keys, everything) = ChangeRecord::decode_keys(&bytes)?;
                Ok(ChangeRecord {
                    version,
                    previous,
                    keys,
                    everything,
                })
            })
            .collect()
    }

    fn newest_change(&self) -> Result<u64> {
        let reply: redis::streams::StreamRangeReply =
            self.run(|c| c.xrevrange_count(self.changes_key(), "+", "-", 1))?;
        Ok(reply
            .ids
            .first()
            .and_then(|e| e.id.split('-').next()?.parse().ok())
            .unwrap_or(0))
    }

    fn published_version(&self) -> Result<u64> {
        let version: Option<u64> = self.run(|c| c.get(self.published_key()))?;
        Ok(version.unwrap_or(0))
    }

    fn latest(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        Ok(self.latest_with_version(keys)?.0)
    }

    fn latest_with_version(&self, keys: &[Vec<u8>]) -> Result<(Vec<Option<Vec<u8>>>, u64)> {
        if keys.is_empty() {
            return Ok((Vec::new(), self.published_version()?));
        }
        let mut pipe = cluster_pipe();
        for key in keys {
            pipe.hgetall(self.row_key(key));
        }
        let versions: Vec<Vec<(u64, Vec<u8>)>> = self.run(|c| pipe.query(c))?;
        // The published version read after the rows: every row at or below
        // it is published, and applying only ever prunes rows below a
        // published one that stays, so each key still holds its newest
        // published row. (Read before, a publish and a later apply in
        // between could prune the only row at or below it.)
        let published = self.published_version()?;
        let rows = versions
            .into_iter()
            .map(|rows| {
                rows.into_iter()
                    .filter(|(v, _)| *v <= published)
                    .max_by_key(|(v, _)| *v)
                    .map(|(_, row)| row)
            })
            .collect();
        Ok((rows, published))
    }

    fn group_events(
        &self,
        prefix: &[u8],
        from: Micros,
        to: Micros,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut many = self.group_events_many(&[(prefix.to_vec(), from, to)])?;
        Ok(many.pop().unwrap_or_default())
    }

    fn group_events_many(&self, groups: &[EventGroup]) -> Result<Vec<GroupEvents>> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = cluster_pipe();
        for (prefix, from, to) in groups {
            pipe.zrangebyscore(self.events_key(prefix), format!("({from}"), *to);
        }
        let members: Vec<Vec<Vec<u8>>> = self.run(|c| pipe.query(c))?;
        // Read after the events, as in `latest`.
        let published = self.published_version()?;
        groups
            .iter()
            .zip(members)
            .map(|((prefix, from, to), members)| {
                published_events(prefix, *from, *to, members, published)
            })
            .collect()
    }
}

/// The events of one group's sorted-set `members` in `(from, to]` and
/// published, as (full index key, encoded row), in index order.
fn published_events(
    prefix: &[u8],
    from: Micros,
    to: Micros,
    members: Vec<Vec<u8>>,
    published: u64,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    {
        let mut out = Vec::with_capacity(members.len());
        for member in members {
            if member.len() < HistoryPosition::LEN {
                return Err(StoreError::Corrupt("short aggregation event".into()));
            }
            let (tail, row) = member.split_at(HistoryPosition::LEN);
            let mut key = prefix.to_vec();
            key.extend_from_slice(tail);
            let position = codec::history_position(prefix, &key)
                .ok_or_else(|| StoreError::Corrupt("bad aggregation event".into()))?;
            if position.store_version <= published
                && position.event_ts > from
                && position.event_ts <= to
            {
                out.push((key, row.to_vec()));
            }
        }
        // Scores tie on event time; the index order also needs version and
        // sequence, which the members' byte order (big-endian tail) gives.
        out.sort();
        Ok(out)
    }
}
