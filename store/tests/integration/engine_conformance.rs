//! One conformance suite, run against every engine.

use reprise_store::cf::Cf;
use reprise_store::engine::{Engine, SortedRun, WriteBatch};

use crate::common::{engine, Kind};

fn put(engine: &dyn Engine, cf: Cf, pairs: &[(&[u8], &[u8])]) {
    let mut batch = WriteBatch::default();
    for (k, v) in pairs {
        batch.put(cf, k.to_vec(), v.to_vec());
    }
    engine.write(batch).unwrap();
}

fn suite(kind: Kind) {
    let (engine, _dir) = engine(kind);
    let engine = engine.as_ref();

    // Column families are separate keyspaces.
    put(engine, Cf::History, &[(b"k", b"history")]);
    put(engine, Cf::Online, &[(b"k", b"online")]);
    assert_eq!(
        engine.get(Cf::History, b"k").unwrap().as_deref(),
        Some(&b"history"[..])
    );
    assert_eq!(
        engine.get(Cf::Online, b"k").unwrap().as_deref(),
        Some(&b"online"[..])
    );
    assert_eq!(engine.get(Cf::Meta, b"k").unwrap(), None);

    // A batch applies in order, across column families; later puts win; deletes delete.
    let mut batch = WriteBatch::default();
    batch.put(Cf::Meta, b"v".to_vec(), b"1".to_vec());
    batch.put(Cf::Meta, b"v".to_vec(), b"2".to_vec());
    batch.put(Cf::Registry, b"r".to_vec(), b"x".to_vec());
    batch.delete(Cf::Online, b"k".to_vec());
    engine.write(batch).unwrap();
    assert_eq!(
        engine.get(Cf::Meta, b"v").unwrap().as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(
        engine.get(Cf::Registry, b"r").unwrap().as_deref(),
        Some(&b"x"[..])
    );
    assert_eq!(engine.get(Cf::Online, b"k").unwrap(), None);

    // multi_get answers in input order, with misses.
    let got = engine
        .multi_get(Cf::History, &[b"zz".to_vec(), b"k".to_vec(), b"k".to_vec()])
        .unwrap();
    assert_eq!(
        got,
        vec![None, Some(b"history".to_vec()), Some(b"history".to_vec())]
    );

    // get_sorted finds sorted keys in one walk: near keys by steps, far
    // ones by a seek, none past the last stored key.
    let stored: Vec<(Vec<u8>, Vec<u8>)> = (0..100u32)
        .map(|i| {
            (
                format!("s{:03}", i * 2).into_bytes(),
                i.to_be_bytes().to_vec(),
            )
        })
        .collect();
    let mut batch = WriteBatch::default();
    for (k, v) in &stored {
        batch.put(Cf::Models, k.clone(), v.clone());
    }
    engine.write(batch).unwrap();
    let wanted: Vec<Vec<u8>> = [
        "a", "s000", "s001", "s002", "s004", "s150", "s198", "s199", "t",
    ]
    .iter()
    .map(|k| k.as_bytes().to_vec())
    .collect();
    let mut found = Vec::new();
    engine
        .get_sorted(Cf::Models, &wanted, &mut |i, value| {
            found.push((i, u32::from_be_bytes(value.try_into().unwrap())));
            Ok(())
        })
        .unwrap();
    assert_eq!(found, vec![(1, 0), (3, 1), (4, 2), (5, 75), (6, 99)]);
    let mut none = 0;
    engine
        .get_sorted(Cf::Models, &[], &mut |_, _| {
            none += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(none, 0);
    engine.delete_prefix(Cf::Models, b"s").unwrap();

    // Prefix scans are ordered and stop at the prefix's end.
    put(
        engine,
        Cf::Snapshots,
        &[(b"p/2", b"b"), (b"p/1", b"a"), (b"q/1", b"c"), (b"p", b"0")],
    );
    let keys: Vec<Vec<u8>> = engine
        .scan_prefix(Cf::Snapshots, b"p/")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![b"p/1".to_vec(), b"p/2".to_vec()]);
    assert!(engine
        .scan_prefix(Cf::Snapshots, b"none")
        .unwrap()
        .is_empty());

    // Cursors find the greatest key <= the seek key and walk back.
    let mut cursor = engine.cursor(Cf::Snapshots).unwrap();
    cursor.seek_for_prev(b"p/15");
    assert_eq!(
        cursor.entry().map(|(k, v)| (k.to_vec(), v.to_vec())),
        Some((b"p/1".to_vec(), b"a".to_vec()))
    );
    cursor.prev();
    assert_eq!(cursor.entry().map(|(k, _)| k.to_vec()), Some(b"p".to_vec()));
    cursor.prev();
    assert!(!cursor.valid());
    cursor.seek_for_prev(b"a");
    assert!(!cursor.valid(), "nothing sorts before `a`");
    cursor.seek_for_prev(b"zzz");
    assert_eq!(
        cursor.entry().map(|(k, _)| k.to_vec()),
        Some(b"q/1".to_vec())
    );

    // Forwards: the smallest key >= the seek key, then onwards.
    cursor.seek(b"p/15");
    assert_eq!(
        cursor.entry().map(|(k, v)| (k.to_vec(), v.to_vec())),
        Some((b"p/2".to_vec(), b"b".to_vec()))
    );
    cursor.next();
    assert_eq!(
        cursor.entry().map(|(k, _)| k.to_vec()),
        Some(b"q/1".to_vec())
    );
    cursor.next();
    assert!(!cursor.valid());
    cursor.seek(b"");
    assert_eq!(cursor.entry().map(|(k, _)| k.to_vec()), Some(b"p".to_vec()));
    cursor.seek(b"zzz");
    assert!(!cursor.valid(), "nothing sorts after `zzz`");
    drop(cursor);

    // A prefix delete removes exactly the keys under it, in one write;
    // the prefix's last byte may be 0xff.
    put(
        engine,
        Cf::Models,
        &[
            (b"m\x01a", b"1"),
            (b"m\x01\xff", b"2"),
            (b"m\x02", b"3"),
            (b"m\xff\x01", b"4"),
            (b"n", b"5"),
        ],
    );
    engine.delete_prefix(Cf::Models, b"m\x01").unwrap();
    engine.delete_prefix(Cf::Models, b"m\xff").unwrap();
    let left: Vec<Vec<u8>> = engine
        .scan_prefix(Cf::Models, b"")
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(left, vec![b"m\x02".to_vec(), b"n".to_vec()]);
    assert_eq!(
        reprise_store::engine::prefix_end(b"a\xff"),
        Some(b"b".to_vec())
    );
    assert_eq!(reprise_store::engine::prefix_end(b"\xff\xff"), None);

    // An ingestion: runs replace older entries with their keys (in the
    // memtable and on disk alike), and the commit batch applies with them.
    put(engine, Cf::AggIndex, &[(b"i1", b"old"), (b"i3", b"kept")]);
    let runs = vec![
        SortedRun::new(
            Cf::AggIndex,
            vec![
                (b"i2".to_vec(), b"new2".to_vec()),
                (b"i1".to_vec(), b"new1".to_vec()),
            ],
        )
        .unwrap(),
        SortedRun::new(Cf::Online, vec![(b"o".to_vec(), b"x".to_vec())]).unwrap(),
        SortedRun::new(Cf::History, vec![]).unwrap(),
    ];
    let mut commit = WriteBatch::default();
    commit.put(Cf::Meta, b"ingested".to_vec(), b"yes".to_vec());
    engine.ingest(runs, commit).unwrap();
    assert_eq!(
        engine.scan_prefix(Cf::AggIndex, b"i").unwrap(),
        vec![
            (b"i1".to_vec(), b"new1".to_vec()),
            (b"i2".to_vec(), b"new2".to_vec()),
            (b"i3".to_vec(), b"kept".to_vec()),
        ]
    );
    assert_eq!(
        engine.get(Cf::Online, b"o").unwrap().as_deref(),
        Some(&b"x"[..])
    );
    assert_eq!(
        engine.get(Cf::Meta, b"ingested").unwrap().as_deref(),
        Some(&b"yes"[..])
    );
    // Later writes still win over ingested entries.
    put(engine, Cf::AggIndex, &[(b"i1", b"later")]);
    assert_eq!(
        engine.get(Cf::AggIndex, b"i1").unwrap().as_deref(),
        Some(&b"later"[..])
    );

    // A cursor open does not block writers.
    let cursor = engine.cursor(Cf::Snapshots).unwrap();
    put(engine, Cf::Snapshots, &[(b"r", b"d")]);
    drop(cursor);
    assert_eq!(
        engine.get(Cf::Snapshots, b"r").unwrap().as_deref(),
        Some(&b"d"[..])
    );
}

#[test]
fn memory_engine_conforms() {
    suite(Kind::Memory);
}

#[test]
fn rocksdb_engine_conforms() {
    suite(Kind::Rocks);
}

#[test]
fn rocksdb_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = reprise_store::engine::RocksEngine::open(dir.path()).unwrap();
        put(&engine, Cf::History, &[(b"k", b"v")]);
    }
    let engine = reprise_store::engine::RocksEngine::open(dir.path()).unwrap();
    assert_eq!(
        engine.get(Cf::History, b"k").unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn a_second_open_of_one_directory_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let _first = reprise_store::engine::RocksEngine::open(dir.path()).unwrap();
    let err = reprise_store::engine::RocksEngine::open(dir.path())
        .err()
        .expect("locked");
    assert!(
        matches!(err, reprise_store::StoreError::Locked { .. }),
        "{err}"
    );
}
