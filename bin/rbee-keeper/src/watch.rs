//! `rbee-keeper watch`: a live view of the fleet, kept from the queen's `/v1/watch` stream.
//!
//! The keeper holds a copy of every entry, applies `sync`/`upsert`/`remove` as they come, and
//! resumes with `Last-Event-ID` after a reconnect, so a dropped link costs only the changes it
//! missed. On a terminal it redraws a frame bounded to the terminal's height, at most four times
//! a second and only when the frame changed; into a pipe it writes one line per change.

use std::{io::IsTerminal as _, time::Duration};

use eventsource_stream::EventStreamError;
use futures_util::StreamExt as _;
use reqwest::{Client, Response, StatusCode, header};
use shared_contract::Transition;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::{
    api::Queen,
    config::{ViewArgs, WatchArgs},
    fleet::{Counts, Fleet, WatchEvent},
    format::{self, Ages},
    view::{self, Bound, Options},
};

const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// The redraw pace: at most four frames a second, whatever the rate of change.
const FRAME: Duration = Duration::from_millis(250);
/// Even without events, ages and the retry countdown move; look again this often.
const REFRESH: Duration = Duration::from_secs(1);
/// Used when the terminal does not say how tall it is.
const FALLBACK_HEIGHT: usize = 40;

/// Watches until Ctrl-C; fails only on errors retrying cannot fix, such as a rejected token.
pub(crate) async fn run(args: WatchArgs, client: Client) -> anyhow::Result<()> {
    let queen = Queen::new(client, &args.queen);
    let mut screen = Screen::new(queen.base().to_owned(), args.view);
    let signal = process_kit::shutdown_signal()?;
    tokio::select! {
        _ = signal => Ok(()),
        result = watch(&queen, &mut screen) => result,
    }
}

async fn watch(queen: &Queen, screen: &mut Screen) -> anyhow::Result<()> {
    let mut resume: Option<String> = None;
    let mut backoff = BACKOFF_MIN;
    let mut tick = tokio::time::interval(FRAME);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seeded = false;
    loop {
        screen.set_link(Link::Connecting);
        let mut request = queen
            .get("/v1/watch")
            .header(header::ACCEPT, "text/event-stream");
        if let Some(id) = &resume {
            request = request.header("Last-Event-ID", id);
        }
        match request.send().await {
            Err(err) => screen.set_link(Link::Down(format!("{:#}", queen.unreachable(&err)))),
            // Retrying cannot fix a missing or wrong token, nor a queen without the watch.
            Ok(resp)
                if matches!(
                    resp.status(),
                    StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND
                ) =>
            {
                return Err(queen
                    .check(resp)
                    .await
                    .err()
                    .unwrap_or_else(|| anyhow::anyhow!("the queen refused the watch")));
            }
            Ok(resp) => match queen.check(resp).await {
                Err(err) => screen.set_link(Link::Down(format!("{err:#}"))),
                Ok(resp) => {
                    screen.set_link(Link::Up);
                    if !seeded {
                        screen.seed(queen).await;
                        seeded = true;
                    }
                    let reason = read(resp, screen, &mut resume, &mut backoff, &mut tick).await;
                    screen.set_link(Link::Down(reason));
                }
            },
        }
        let retry_at = Instant::now() + backoff;
        screen.retry_at = Some(retry_at);
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(retry_at) => break,
                _ = tick.tick() => screen.tick(),
            }
        }
        screen.retry_at = None;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Applies the events of one connection until it ends; returns why it ended.
async fn read(
    resp: Response,
    screen: &mut Screen,
    resume: &mut Option<String>,
    backoff: &mut Duration,
    tick: &mut Interval,
) -> String {
    let mut events = sse_client::events(resp.bytes_stream());
    loop {
        tokio::select! {
            next = events.next() => match next {
                Some(Ok(event)) => {
                    // The queen's ids are `EPOCH:REVISION`; the last one is where to resume.
                    if !event.id.is_empty() {
                        *resume = Some(event.id.clone());
                    }
                    match WatchEvent::parse(&event.event, &event.data) {
                        Ok(Some(change)) => {
                            screen.apply(change);
                            // A healthy stream resets the backoff.
                            *backoff = BACKOFF_MIN;
                        }
                        Ok(None) => {}
                        Err(err) => {
                            tracing::warn!(error = %format!("{err:#}"), "skipping a watch event this keeper cannot read");
                        }
                    }
                }
                Some(Err(EventStreamError::Transport(err))) => {
                    return format!("stream broke: {}", error_kind(&err));
                }
                Some(Err(err)) => return format!("the stream is malformed: {err}"),
                None => return "the queen closed the stream".to_owned(),
            },
            _ = tick.tick() => screen.tick(),
        }
    }
}

fn error_kind(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "no data for too long"
    } else {
        "connection lost"
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Link {
    Connecting,
    Up,
    Down(String),
}

/// The local copy and what was last shown of it.
#[derive(Debug)]
struct Screen {
    queen_url: String,
    filter: ViewArgs,
    fleet: Fleet,
    link: Link,
    retry_at: Option<Instant>,
    /// Stdout is a terminal: draw frames; otherwise write lines.
    tty: bool,
    /// Something arrived since the last look.
    dirty: bool,
    looked_at: Option<Instant>,
    /// The last frame drawn (terminal) or status line written (pipe).
    shown: Vec<String>,
}

impl Screen {
    fn new(queen_url: String, filter: ViewArgs) -> Self {
        Self {
            queen_url,
            filter,
            fleet: Fleet::default(),
            link: Link::Connecting,
            retry_at: None,
            tty: std::io::stdout().is_terminal(),
            dirty: true,
            looked_at: None,
            shown: Vec::new(),
        }
    }

    /// Fills the transition list with the queen's recent history, so a fresh view has context.
    async fn seed(&mut self, queen: &Queen) {
        let path = format!("/v1/events?limit={}", crate::fleet::RECENT_TRANSITIONS);
        // Without history the view still works; the stream brings new transitions either way.
        if let Ok(value) = queen.get_json(&path).await
            && let Ok(list) = serde_json::from_value::<Vec<Transition>>(value)
        {
            self.fleet.seed_transitions(list);
            self.dirty = true;
        }
    }

    fn set_link(&mut self, link: Link) {
        if self.link != link {
            self.link = link;
            self.dirty = true;
            // Connection changes show at once; events wait for the next frame.
            self.draw(Instant::now());
        }
    }

    fn apply(&mut self, change: WatchEvent) {
        let transition = self.fleet.apply(change, Instant::now());
        if let (false, Some(t)) = (self.tty, transition) {
            say!("{}", format::transition_line(t));
        }
        self.dirty = true;
    }

    /// Called every frame: draws when something arrived, or once a second for moving ages.
    fn tick(&mut self) {
        let now = Instant::now();
        let due = self
            .looked_at
            .is_none_or(|at| now.duration_since(at) >= REFRESH);
        if self.dirty || due {
            self.draw(now);
        }
    }

    fn draw(&mut self, now: Instant) {
        self.dirty = false;
        self.looked_at = Some(now);
        let lines = if self.tty {
            self.frame(now)
        } else {
            vec![self.status_line()]
        };
        if lines == self.shown {
            return;
        }
        if self.tty {
            let width = terminal_size::terminal_size().map(|(w, _)| usize::from(w.0));
            say!("{}", paint(&lines, width, self.shown.is_empty()));
        } else {
            say!("{}", lines.join("\n"));
        }
        self.shown = lines;
    }

    /// A whole terminal frame, at most one line shorter than the terminal so it never scrolls.
    fn frame(&self, now: Instant) -> Vec<String> {
        let height =
            terminal_size::terminal_size().map_or(FALLBACK_HEIGHT, |(_, h)| usize::from(h.0));
        let mut title = format!("rbee watch  {}  {}", self.queen_url, self.link_line(true));
        if let Some(position) = self.fleet.position() {
            title.push_str(&format!("  at {position}"));
        }
        title.push_str("  (Ctrl-C to quit)");
        let header = [title, String::new()];
        if !self.fleet.synced() {
            return vec![header[0].clone(), "waiting for the fleet...".to_owned()];
        }
        let opts = Options {
            filter: self.filter.clone(),
            ages: Ages::Live,
            bound: Bound::Lines(height.saturating_sub(1).max(1)),
            transitions: true,
        };
        view::render(&self.fleet, &header, &opts, now)
    }

    /// The line a pipe gets when the link or the counts change.
    fn status_line(&self) -> String {
        if self.fleet.synced() {
            format!(
                "{} | {}",
                self.link_line(false),
                counts_line(&self.fleet.worker_counts(), &self.fleet.hive_counts())
            )
        } else {
            self.link_line(false)
        }
    }

    fn link_line(&self, countdown: bool) -> String {
        match &self.link {
            Link::Connecting => "[connecting]".to_owned(),
            Link::Up => "[connected]".to_owned(),
            Link::Down(reason) => match self.retry_at {
                Some(at) if countdown => {
                    let secs = at.saturating_duration_since(Instant::now()).as_secs_f64();
                    format!("[disconnected: {reason}; retrying in {secs:.0}s]")
                }
                _ => format!("[disconnected: {reason}]"),
            },
        }
    }
}

/// Cursor home, each line cut to the width and cleared to its end, then the rest cleared: no
/// flicker from clearing the whole screen on every frame.
fn paint(lines: &[String], width: Option<usize>, first: bool) -> String {
    let mut out = String::from(if first { "\x1b[2J\x1b[H" } else { "\x1b[H" });
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push_str("\x1b[K\n");
        }
        match width {
            Some(w) => out.extend(line.chars().take(w)),
            None => out.push_str(line),
        }
    }
    out.push_str("\x1b[K\x1b[J");
    out
}

fn counts_line(workers: &Counts, hives: &Counts) -> String {
    format!(
        "workers {} online / {} available / {} offline   hives {} online / {} available / {} offline",
        workers.online,
        workers.available,
        workers.offline,
        hives.online,
        hives.available,
        hives.offline
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_painted_in_place_and_cut_to_the_width() {
        let lines = vec!["abcdef".to_owned(), "xy".to_owned()];
        assert_eq!(
            paint(&lines, Some(4), false),
            "\x1b[Habcd\x1b[K\nxy\x1b[K\x1b[J"
        );
        assert!(paint(&lines, None, true).starts_with("\x1b[2J\x1b[Habcdef"));
    }

    #[test]
    fn a_pipe_gets_the_link_and_the_counts_on_one_line() {
        let mut screen = Screen::new("http://q".to_owned(), ViewArgs::default());
        assert_eq!(screen.status_line(), "[connecting]");
        screen.link = Link::Up;
        screen.fleet.apply(
            WatchEvent::parse(
                "sync",
                r#"{"epoch":"e","revision":3,"workers":[],"hives":[]}"#,
            )
            .unwrap()
            .unwrap(),
            Instant::now(),
        );
        assert_eq!(
            screen.status_line(),
            "[connected] | workers 0 online / 0 available / 0 offline   hives 0 online / 0 available / 0 offline"
        );
    }
}
