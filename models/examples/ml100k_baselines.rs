//! Baselines on MovieLens-100k's per-user chronological 75/25 split.
//!
//! ```sh
//! cargo run --release -p reprise-models --example ml100k_baselines -- "$(scripts/fetch-movielens)"
//! ```

use std::time::Instant;

use reprise_models::als::{Als, AlsParams};
use reprise_models::baselines::{evaluate, ItemKnn, MostPopular, Precomputed};
use reprise_models::context::{NoContext, Occasions};
use reprise_models::dataset::{chronological_split, Dataset};
use reprise_models::pipeline::{item_sets, user_cutoffs, PipelineParams, TwoStage};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: ml100k_baselines DIR (holding ml-100k.inter)");
    let text =
        std::fs::read_to_string(format!("{dir}/ml-100k.inter")).expect("reading ml-100k.inter");
    let mut data = Dataset::default();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        data.push(
            f[0],
            f[1],
            f[3].parse::<f64>().unwrap() as i64,
            f[2].parse().unwrap(),
        );
    }
    let split = chronological_split(&data.interactions, 0.75);
    println!(
        "{} users, {} items, {} train, {} held out",
        data.user_count(),
        data.item_count(),
        split.train.len(),
        split.test.len()
    );
    let start = Instant::now();
    let popular = evaluate(&MostPopular::fit(&split.train), &split, 10);
    println!(
        "most_popular  {popular:?} ({:.1}s)",
        start.elapsed().as_secs_f64()
    );
    for neighbours in [50, 100, 200] {
        let start = Instant::now();
        let knn = ItemKnn::fit(
            &split.train,
            data.user_count(),
            data.item_count(),
            neighbours,
        );
        let result = evaluate(&knn, &split, 10);
        println!(
            "item_knn k={neighbours:<3} {result:?} ({:.1}s)",
            start.elapsed().as_secs_f64()
        );
    }
    for (factors, regularization, alpha) in [(64, 0.1, 10.0), (32, 1.0, 20.0), (128, 5.0, 40.0)] {
        let start = Instant::now();
        let params = AlsParams {
            factors,
            regularization,
            alpha,
            ..AlsParams::default()
        };
        let als = Als::fit(&split.train, data.user_count(), data.item_count(), &params);
        let result = evaluate(&als, &split, 10);
        println!(
            "als f={factors} reg={regularization} alpha={alpha} {result:?} ({:.1}s)",
            start.elapsed().as_secs_f64()
        );
    }
    let start = Instant::now();
    let (pipeline, _) = TwoStage::fit(
        &split.train,
        data.user_count(),
        data.item_count(),
        PipelineParams::default(),
        &NoContext,
    )
    .expect("no context to fail");
    let users: Vec<(u32, i64)> = user_cutoffs(&split.train).into_iter().collect();
    let ranked = pipeline
        .rank(
            &users,
            &item_sets(&split.train),
            &NoContext,
            &Occasions::none(),
        )
        .expect("no context to fail");
    let result = evaluate(&Precomputed::from_scored(&ranked), &split, 10);
    println!(
        "two_stage (no store context) {result:?} ({:.1}s)",
        start.elapsed().as_secs_f64()
    );
}
