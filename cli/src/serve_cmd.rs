//! `reprise serve`.

use std::sync::Arc;

use reprise_api::ServerConfig;

use crate::args::{ServeArgs, StoreArgs};

pub fn run(store_args: &StoreArgs, args: ServeArgs) -> anyhow::Result<()> {
    let store = crate::args::open_store(store_args)?;
    if args.demo {
        crate::demo::load(&store)?;
        if let Some(dir) = &args.movielens {
            crate::train_cmd::import_and_train_once(&store, dir)?;
        }
    }
    let config = ServerConfig {
        listen: args.listen,
        http_workers: args.http_workers,
        recommender: reprise_actors::recommend::RecommenderConfig {
            workers: args.ranker_workers,
            ..Default::default()
        },
        max_body_bytes: args.max_body_bytes,
        ..ServerConfig::default()
    };
    let store = Arc::new(store);
    actix_rt::System::new().block_on(reprise_api::serve(store, config))?;
    Ok(())
}
