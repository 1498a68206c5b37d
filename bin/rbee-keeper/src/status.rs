//! `rbee-keeper status`: one snapshot of the fleet, summarised and bounded, or as JSON.

use reqwest::Client;
use tokio::time::Instant;

use crate::{
    api::Queen,
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
        // What the queen sent, unparsed, so fields this keeper does not know survive.
        let raw = queen.get_text(SNAPSHOT).await?;
        say!("{}", raw.trim_end());
        return Ok(());
    }
    let listing = queen.snapshot().await?;
    let header = header(&listing, queen.base());
    let fleet = Fleet::from_listing(listing, Instant::now());
    let opts = Options {
        filter: args.view,
        ages: Ages::Exact,
        bound: Bound::Rows(MAX_ROWS),
        transitions: false,
    };
    for line in view::render(&fleet, &[header, String::new()], &opts, Instant::now()) {
        say!("{line}");
    }
    Ok(())
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
