//! `rbee-keeper status`: one snapshot of the fleet, summarised and bounded, or as JSON.

use reqwest::Client;
use tokio::time::Instant;

use crate::{
    api::Queen,
    cluster,
    config::StatusArgs,
    fleet::{Fleet, Listing},
    format::Ages,
    view::{self, Bound, Options},
};

const SNAPSHOT: &str = "/v1/heartbeats/snapshot";

/// Rows per table unless `--all`: a screenful or two, whatever the fleet's size.
const MAX_ROWS: usize = 50;

/// Fetches the snapshot once and prints it.
pub(crate) async fn run(args: StatusArgs, client: Client) -> anyhow::Result<()> {
    let queen = Queen::new(client, &args.queen);
    if args.json {
        // What the queen sent, unparsed, so fields this keeper does not know survive; in a
        // cluster, with its `/v1/cluster` answer in front as `"cluster"`.
        let raw = queen.get_text(SNAPSHOT).await?;
        let raw = raw.trim_end();
        match cluster_of(&queen, cluster::fetch_text).await {
            Some(view) => say!("{}", cluster::with_cluster(raw, &view)),
            None => say!("{raw}"),
        }
        return Ok(());
    }
    let listing = queen.snapshot().await?;
    let mut header = vec![header(&listing, queen.base())];
    if let Some(view) = cluster_of(&queen, cluster::fetch).await {
        header.extend(cluster::block(&view));
    }
    header.push(String::new());
    let fleet = Fleet::from_listing(listing, Instant::now());
    let opts = Options {
        filter: args.view,
        ages: Ages::Exact,
        bound: Bound::Rows(MAX_ROWS),
        transitions: false,
    };
    for line in view::render(&fleet, &header, &opts, Instant::now()) {
        say!("{line}");
    }
    Ok(())
}

/// Asks for the queen's cluster after its snapshot came: a queen that runs alone has none, and
/// a failure here only costs the cluster block, so it is a warning, not the end of `status`.
async fn cluster_of<'q, T, F>(queen: &'q Queen, fetch: impl FnOnce(&'q Queen) -> F) -> Option<T>
where
    F: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    match fetch(queen).await {
        Ok(view) => view,
        Err(err) => {
            tracing::warn!(error = %format!("{err:#}"), "cannot ask the queen for its cluster");
            None
        }
    }
}

fn header(listing: &Listing, queen_url: &str) -> String {
    let mut line = format!("queen {queen_url}");
    if let Some(revision) = listing.revision {
        line.push_str(&format!("  revision {revision}"));
    }
    if let Some(at) = listing.timestamp {
        line.push_str(&format!("  at {}", at.format("%Y-%m-%d %H:%M:%S UTC")));
    }
    line
}
