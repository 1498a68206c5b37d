//! `rbee-keeper status`: one snapshot of the fleet as aligned tables, or as JSON.

use anyhow::Context as _;
use reqwest::Client;

use crate::{
    api::{FleetSnapshot, Queen},
    config::StatusArgs,
    format,
};

/// Fetches the snapshot once and prints it.
pub(crate) async fn run(args: StatusArgs, client: Client) -> anyhow::Result<()> {
    let queen = Queen::new(client, &args.queen);
    if args.json {
        // Print what the queen sent, so fields this keeper does not know about survive.
        let raw = queen.get_json("/v1/heartbeats/snapshot").await?;
        let text = serde_json::to_string_pretty(&raw).context("format the snapshot as json")?;
        println!("{text}");
        return Ok(());
    }
    let (snapshot, _) = queen.snapshot().await?;
    print!("{}", render(&snapshot, queen.base()));
    Ok(())
}

/// Renders a snapshot as the `status` command prints it.
pub(crate) fn render(snapshot: &FleetSnapshot, queen_url: &str) -> String {
    let mut out = format!(
        "queen {queen_url}  snapshot #{}  at {}\n\n",
        snapshot.seq,
        snapshot.timestamp.format("%Y-%m-%d %H:%M:%S UTC")
    );
    out.push_str(&format!(
        "HIVES: {} online, {} available, {} known\n",
        snapshot.hives_online,
        snapshot.hives_available,
        snapshot.hives.len()
    ));
    if snapshot.hives.is_empty() {
        out.push_str("  (none)\n");
    } else {
        out.push_str(&format::hives_table(&snapshot.hives, 0));
    }
    out.push_str(&format!(
        "\nWORKERS: {} online, {} available, {} known\n",
        snapshot.workers_online,
        snapshot.workers_available,
        snapshot.workers.len()
    ));
    if snapshot.workers.is_empty() {
        out.push_str("  (none)\n");
    } else {
        out.push_str(&format::workers_table(&snapshot.workers, 0));
    }
    out
}
