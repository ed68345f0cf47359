//! Decoding and encoding one stored row of 10 features (5 floats, 3 ints,
//! 2 strings, the bench view's shape): the direct wire-format codec
//! (`RawRow`) against prost's generated `Row` message and its conversion.

use criterion::{criterion_group, criterion_main, Criterion};
use prost::Message;
use reprise_store::proto;
use reprise_store::row::RawRow;
use reprise_store::Value;

fn row() -> RawRow {
    let mut values: Vec<Option<Value>> = (0..5)
        .map(|i| Some(Value::Float64(i as f64 * 0.37)))
        .collect();
    values.extend((0..3).map(|i| Some(Value::Int64(1_000 + i))));
    values.push(Some(Value::String("segment_7".into())));
    values.push(Some(Value::String("country_fr".into())));
    RawRow {
        event_ts: 1_700_000_000_000_000,
        created_ts: 1_700_000_000_000_100,
        store_version: 42,
        values,
    }
}

fn bench(c: &mut Criterion) {
    let row = row();
    let bytes = row.encode();
    c.bench_function("row_decode_10_direct", |b| {
        b.iter(|| RawRow::decode(std::hint::black_box(&bytes), 10).unwrap())
    });
    c.bench_function("row_decode_10_prost_message", |b| {
        b.iter(|| {
            let message = proto::Row::decode(std::hint::black_box(bytes.as_slice())).unwrap();
            let mut values: Vec<Option<Value>> = vec![None; 10];
            for field in message.fields {
                if let (Some(slot), Some(value)) =
                    (values.get_mut(field.feature_id as usize), field.value)
                {
                    *slot = value.into();
                }
            }
            values
        })
    });
    c.bench_function("row_encode_10_direct", |b| {
        b.iter(|| std::hint::black_box(&row).encode())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
