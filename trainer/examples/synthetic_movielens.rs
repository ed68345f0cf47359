//! Writes a generated data set in MovieLens' format, for load tests at a
//! scale the real data does not reach (e.g. 50,000 items in the ANN index).
//!
//! ```sh
//! cargo build --release --workspace --all-targets
//! target/release/examples/synthetic_movielens /tmp/ml-50k 8000 25000
//! target/release/reprise --data-dir /tmp/rec50k import movielens /tmp/ml-50k
//! ```

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, users, items_per_group] = args.as_slice() else {
        eprintln!("usage: synthetic_movielens DIR USERS ITEMS_PER_GROUP");
        std::process::exit(2);
    };
    let dir = std::path::Path::new(dir);
    std::fs::create_dir_all(dir).expect("creating the output directory");
    reprise_trainer::synthetic::write_movielens(
        dir,
        users.parse().expect("USERS is a number"),
        items_per_group
            .parse()
            .expect("ITEMS_PER_GROUP is a number"),
    )
    .expect("writing the files");
    println!("{}", dir.display());
}
