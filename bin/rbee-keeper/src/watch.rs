//! `rbee-keeper watch`: a live terminal view of the fleet from the queen's event stream.

use std::{
    collections::VecDeque,
    io::{IsTerminal as _, Write as _},
    time::Duration,
};

use futures_util::StreamExt as _;
use reqwest::{Client, StatusCode, header};
use shared_contract::Transition;
use tokio::time::{Instant, MissedTickBehavior};

use crate::{
    api::{FleetSnapshot, Queen},
    config::WatchArgs,
    format,
    sse::{SseEvent, SseParser},
    up::shutdown_signal,
};

const RECENT_TRANSITIONS: usize = 12;
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Watches until Ctrl-C; fails only on errors retrying cannot fix, such as a rejected token.
pub(crate) async fn run(args: WatchArgs, client: Client) -> anyhow::Result<()> {
    let queen = Queen::new(client, &args.queen);
    let mut view = View::new(queen.base().to_owned());
    tokio::select! {
        () = shutdown_signal() => {
            view.finish();
            Ok(())
        }
        result = watch(&queen, &mut view) => result,
    }
}

async fn watch(queen: &Queen, view: &mut View) -> anyhow::Result<()> {
    let mut backoff = BACKOFF_MIN;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        view.link = Link::Connecting;
        view.draw();
        let sent = queen
            .get("/v1/heartbeats/stream")
            .header(header::ACCEPT, "text/event-stream")
            .send()
            .await;
        match sent {
            Err(err) => view.link = Link::Down(format!("{:#}", queen.unreachable(&err))),
            Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                // Retrying cannot fix a missing or wrong token.
                return Err(queen
                    .check(resp)
                    .await
                    .err()
                    .unwrap_or_else(|| anyhow::anyhow!("unauthorized")));
            }
            Ok(resp) => match queen.check(resp).await {
                Err(err) => view.link = Link::Down(format!("{err:#}")),
                Ok(resp) => {
                    view.link = Link::Up;
                    view.seed(queen).await;
                    view.draw();
                    let mut body = resp.bytes_stream();
                    let mut parser = SseParser::default();
                    let reason = loop {
                        tokio::select! {
                            chunk = body.next() => match chunk {
                                Some(Ok(bytes)) => {
                                    let events = parser.push(&bytes);
                                    if events.iter().any(|e| view.apply(e)) {
                                        // A healthy stream resets the backoff.
                                        backoff = BACKOFF_MIN;
                                        view.draw();
                                    }
                                }
                                Some(Err(err)) => break format!("stream broke: {}", error_kind(&err)),
                                None => break "the queen closed the stream".to_owned(),
                            },
                            _ = tick.tick() => view.tick(),
                        }
                    };
                    view.link = Link::Down(reason);
                }
            },
        }
        let retry_at = Instant::now() + backoff;
        view.retry_at = Some(retry_at);
        view.draw();
        while Instant::now() < retry_at {
            tokio::select! {
                () = tokio::time::sleep_until(retry_at) => {}
                _ = tick.tick() => view.tick(),
            }
        }
        view.retry_at = None;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn error_kind(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "no data for too long"
    } else {
        "connection lost"
    }
}

#[derive(Debug)]
enum Link {
    Connecting,
    Up,
    Down(String),
}

/// What the terminal shows, redrawn whole on every change.
#[derive(Debug)]
struct View {
    queen_url: String,
    tty: bool,
    link: Link,
    retry_at: Option<Instant>,
    snapshot: Option<(FleetSnapshot, Instant)>,
    transitions: VecDeque<Transition>,
}

impl View {
    fn new(queen_url: String) -> Self {
        Self {
            queen_url,
            tty: std::io::stdout().is_terminal(),
            link: Link::Connecting,
            retry_at: None,
            snapshot: None,
            transitions: VecDeque::new(),
        }
    }

    /// Fills the transition list with the queen's recent history, so a fresh view has context.
    async fn seed(&mut self, queen: &Queen) {
        let path = format!("/v1/events?limit={RECENT_TRANSITIONS}");
        // Without history the view still works; the stream brings new transitions either way.
        if let Ok(value) = queen.get_json(&path).await {
            if let Ok(list) = serde_json::from_value::<Vec<Transition>>(value) {
                // The queen lists oldest first; this view shows newest first.
                self.transitions = list.into_iter().rev().collect();
                self.transitions.truncate(RECENT_TRANSITIONS);
            }
        }
    }

    /// Applies one event; returns whether it changed what is shown.
    fn apply(&mut self, event: &SseEvent) -> bool {
        match event.event.as_str() {
            "heartbeat" => match serde_json::from_str::<FleetSnapshot>(&event.data) {
                Ok(snapshot) => {
                    self.snapshot = Some((snapshot, Instant::now()));
                    true
                }
                Err(err) => {
                    tracing::warn!(error = %err, "skipping a snapshot this keeper cannot read");
                    false
                }
            },
            "transition" => match serde_json::from_str::<Transition>(&event.data) {
                Ok(t) if self.transitions.contains(&t) => false,
                Ok(t) => {
                    if !self.tty {
                        println!("{}", transition_line(&t));
                    }
                    self.transitions.push_front(t);
                    self.transitions.truncate(RECENT_TRANSITIONS);
                    true
                }
                Err(err) => {
                    tracing::warn!(error = %err, "skipping a transition this keeper cannot read");
                    false
                }
            },
            _ => false,
        }
    }

    /// Redraws once a second so ages and the retry countdown move; only on a terminal.
    fn tick(&self) {
        if self.tty {
            self.draw();
        }
    }

    fn draw(&self) {
        if !self.tty {
            // Piped output gets one line per connection change or snapshot, not a redraw.
            if let Some((s, _)) = &self.snapshot {
                println!("{} | {}", self.link_line(), counts_line(s));
            } else {
                println!("{}", self.link_line());
            }
            return;
        }
        let mut out = String::from("\x1b[H\x1b[2J");
        out.push_str(&format!(
            "rbee watch  {}  {}\n\n",
            self.queen_url,
            self.link_line()
        ));
        match &self.snapshot {
            None => out.push_str("waiting for the first snapshot...\n"),
            Some((s, at)) => {
                let extra = u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX);
                out.push_str(&format!("{}  (snapshot #{})\n\n", counts_line(s), s.seq));
                out.push_str(&format::hives_table(&s.hives, extra));
                out.push('\n');
                out.push_str(&format::workers_table(&s.workers, extra));
            }
        }
        out.push_str("\nRECENT TRANSITIONS (newest first)\n");
        if self.transitions.is_empty() {
            out.push_str("  (none yet)\n");
        }
        for t in &self.transitions {
            out.push_str("  ");
            out.push_str(&transition_line(t));
            out.push('\n');
        }
        out.push_str("\nCtrl-C to quit\n");
        let mut stdout = std::io::stdout().lock();
        // A closed terminal is not worth failing over; the next redraw tries again.
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }

    fn link_line(&self) -> String {
        match &self.link {
            Link::Connecting => "[connecting]".to_owned(),
            Link::Up => "[connected]".to_owned(),
            Link::Down(reason) => match self.retry_at {
                Some(at) => {
                    let secs = at.saturating_duration_since(Instant::now()).as_secs_f64();
                    format!("[disconnected: {reason}; retrying in {secs:.0}s]")
                }
                None => format!("[disconnected: {reason}]"),
            },
        }
    }

    fn finish(&self) {
        if self.tty {
            println!();
        }
    }
}

fn counts_line(s: &FleetSnapshot) -> String {
    format!(
        "workers {} online / {} available   hives {} online / {} available",
        s.workers_online, s.workers_available, s.hives_online, s.hives_available
    )
}

fn transition_line(t: &Transition) -> String {
    let from = t.from.map_or("new", |s| s.as_str());
    format!(
        "{}  {:<6} {}  {from} -> {}  ({})",
        t.at.format("%H:%M:%S"),
        t.kind.as_str(),
        t.id,
        t.to,
        t.reason
    )
}
