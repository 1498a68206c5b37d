//! What `status` and `watch` print, readable at 10,000 workers: counts and a per-hive rollup
//! first, problem rows before the rest, and tables bounded to what fits, with a hint how to see
//! more.

use std::collections::BTreeMap;

use hive_contract::HiveInfo;
use shared_contract::{Heartbeat, State};
use tokio::time::Instant;
use worker_contract::WorkerInfo;

use crate::{
    config::{StateFilter, ViewArgs},
    fleet::{Counts, Fleet, Kept, Problem},
    format::{self, Ages, Table},
};

/// How many rows a table may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// At most this many rows per table (`status`).
    Rows(usize),
    /// The whole output in at most this many lines (`watch` on a terminal).
    Lines(usize),
}

/// How to render.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) filter: ViewArgs,
    pub(crate) ages: Ages,
    pub(crate) bound: Bound,
    /// Whether to list recent transitions.
    pub(crate) transitions: bool,
}

/// Transitions shown at most, however tall the terminal.
const MAX_TRANSITION_ROWS: usize = 8;

/// Renders the fleet below `header`; returns lines without line breaks.
///
/// Only the rows shown are formatted, so a redraw at 10,000 workers costs a sort of references
/// and a few dozen formatted rows.
pub(crate) fn render(
    fleet: &Fleet,
    header: &[String],
    opts: &Options,
    now: Instant,
) -> Vec<String> {
    let mut out: Vec<String> = header.to_vec();
    out.push(format::counts_line("WORKERS", &fleet.worker_counts()));
    out.push(format::counts_line("HIVES", &fleet.hive_counts()));
    let filter = &opts.filter;
    let hives = select_hives(fleet, filter);
    let workers = select_workers(fleet, filter);
    if filter.state.is_some() || filter.hive.is_some() {
        out.push(format!(
            "showing {}: {} hives, {} workers match",
            describe(filter),
            hives.len(),
            workers.len()
        ));
    }
    out.push(String::new());

    // With `--hive ID`, the hive's machine details come first; they are a line or two.
    let mut details = Vec::new();
    if let Some(kept) = filter.hive.as_deref().and_then(|id| fleet.hive(id)) {
        details.extend(lines(&format::hive_details_table(&[kept], opts.ages, now)));
        details.push(String::new());
    }
    let transitions: Vec<_> = if opts.transitions {
        fleet.transitions().collect()
    } else {
        Vec::new()
    };

    let (hive_rows, worker_rows, transition_rows) = match opts.bound {
        _ if filter.all => (usize::MAX, usize::MAX, transitions.len()),
        Bound::Rows(n) => (n, n, transitions.len().min(n)),
        Bound::Lines(total) => {
            // Table headers, the blank line between tables, and the transitions' title.
            let fixed = out.len() + details.len() + 3 + if opts.transitions { 2 } else { 0 };
            share(
                total.saturating_sub(fixed),
                hives.len(),
                workers.len(),
                opts.transitions.then_some(transitions.len()),
            )
        }
    };

    out.extend(details);
    let shown = bounded(&hives, hive_rows);
    if hives.is_empty() {
        out.push("no hives".to_owned());
    } else {
        out.extend(lines(&rollup_table(shown, opts.ages, now)));
        if shown.len() < hives.len() {
            out.push(format!(
                "... {} more hives not shown; see them with --all or --hive ID",
                hives.len() - shown.len()
            ));
        }
    }
    out.push(String::new());

    let shown = bounded(&workers, worker_rows);
    if workers.is_empty() {
        out.push("no workers".to_owned());
    } else {
        out.extend(lines(&format::workers_table(shown, opts.ages, now)));
        if shown.len() < workers.len() {
            out.push(format!(
                "... {} more workers not shown ({} of {}); see them with --all, --state STATE or --hive ID",
                workers.len() - shown.len(),
                shown.len(),
                workers.len()
            ));
        }
    }

    if opts.transitions {
        out.push(String::new());
        out.push("RECENT TRANSITIONS (newest first)".to_owned());
        if transitions.is_empty() {
            out.push("  (none yet)".to_owned());
        }
        for t in transitions.iter().take(transition_rows) {
            out.push(format!("  {}", format::transition_line(t)));
        }
    }
    if let Bound::Lines(total) = opts.bound
        && !filter.all
    {
        // A terminal too small for the fixed parts still gets no more lines than it has.
        out.truncate(total);
    }
    out
}

/// One hive's line in the rollup: the hive's own entry (if the queen knows the hive) and its
/// workers by state.
#[derive(Debug)]
struct HiveRow<'a> {
    id: &'a str,
    hive: Option<&'a Kept<HiveInfo>>,
    workers: Counts,
}

impl HiveRow<'_> {
    /// Problem hives sort first: the hive itself, then hives with problem workers.
    fn rank(&self) -> (u8, Option<Problem>) {
        match self.hive.and_then(Kept::problem) {
            Some(p) => (0, Some(p)),
            None if self.workers.problems > 0 => (1, None),
            None => (2, None),
        }
    }
}

fn rollup(fleet: &Fleet) -> Vec<HiveRow<'_>> {
    let mut rows: BTreeMap<&str, HiveRow<'_>> = fleet
        .hives()
        .map(|h| {
            let row = HiveRow {
                id: h.id(),
                hive: Some(h),
                workers: Counts::default(),
            };
            (h.id(), row)
        })
        .collect();
    for w in fleet.workers() {
        let id = w.entry.payload.hive_id.as_str();
        rows.entry(id)
            .or_insert_with(|| HiveRow {
                id,
                hive: None,
                workers: Counts::default(),
            })
            .workers
            .add(w);
    }
    let mut rows: Vec<_> = rows.into_values().collect();
    rows.sort_by_key(HiveRow::rank);
    rows
}

fn select_hives<'a>(fleet: &'a Fleet, filter: &ViewArgs) -> Vec<HiveRow<'a>> {
    rollup(fleet)
        .into_iter()
        .filter(|row| filter.hive.as_deref().is_none_or(|id| row.id == id))
        .filter(|row| match filter.state {
            None => true,
            // A hive the queen does not know has no state of its own; its workers decide.
            Some(StateFilter::Problem) => row.rank().0 < 2,
            Some(state) => row.hive.is_some_and(|h| in_state(h, state)),
        })
        .collect()
}

/// Workers that pass the filter: problems first (most urgent first), the rest by id.
fn select_workers<'a>(fleet: &'a Fleet, filter: &ViewArgs) -> Vec<&'a Kept<WorkerInfo>> {
    let (mut problems, rest): (Vec<_>, Vec<_>) = fleet
        .workers()
        .filter(|w| {
            filter
                .hive
                .as_deref()
                .is_none_or(|id| w.entry.payload.hive_id == id)
        })
        .filter(|w| filter.state.is_none_or(|s| in_state(w, s)))
        .partition(|w| w.problem().is_some());
    // Stable: within one kind of problem, id order stays.
    problems.sort_by_key(|w| w.problem());
    problems.extend(rest);
    problems
}

fn in_state<T: Heartbeat>(kept: &Kept<T>, state: StateFilter) -> bool {
    match state {
        StateFilter::Online => kept.entry.state == State::Online,
        StateFilter::Offline => kept.entry.state == State::Offline,
        StateFilter::Left => kept.entry.state == State::Left,
        StateFilter::Available => kept.entry.available,
        StateFilter::Problem => kept.problem().is_some(),
    }
}

fn describe(filter: &ViewArgs) -> String {
    let mut parts = Vec::new();
    if let Some(state) = filter.state {
        let name = match state {
            StateFilter::Online => "online",
            StateFilter::Offline => "offline",
            StateFilter::Left => "left",
            StateFilter::Available => "available",
            StateFilter::Problem => "problem",
        };
        parts.push(format!("--state {name}"));
    }
    if let Some(hive) = &filter.hive {
        parts.push(format!("--hive {hive}"));
    }
    parts.join(" ")
}

fn rollup_table(rows: &[HiveRow<'_>], ages: Ages, now: Instant) -> String {
    let mut t = Table::new(&[
        "HIVE",
        "STATE",
        "HEALTH",
        "HOST",
        "WORKERS",
        "ONLINE",
        "OFFLINE",
        "LEFT",
        "AVAILABLE",
        "PROBLEMS",
        "LAST SEEN",
    ]);
    for row in rows {
        let (state, health, host, seen) = match row.hive {
            Some(h) => (
                if h.entry.conflict {
                    format!("{} (conflict)", h.entry.state)
                } else {
                    h.entry.state.to_string()
                },
                format::health(&h.entry.payload.health),
                h.entry.payload.hostname.clone(),
                ages.last_seen(h, now),
            ),
            None => (
                "unknown".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
            ),
        };
        let c = &row.workers;
        t.row(vec![
            row.id.to_owned(),
            state,
            health,
            host,
            c.known.to_string(),
            c.online.to_string(),
            c.offline.to_string(),
            c.left.to_string(),
            c.available.to_string(),
            c.problems.to_string(),
            seen,
        ]);
    }
    t.render()
}

/// Shares `avail` lines between the hive rollup, the workers and the transitions (`None` when
/// not shown), counting a hint line for each table that does not fit; returns rows per part.
fn share(
    avail: usize,
    hives: usize,
    workers: usize,
    transitions: Option<usize>,
) -> (usize, usize, usize) {
    let mut avail = avail;
    let transition_rows = match transitions {
        // The list's "(none yet)" line takes one row too.
        Some(n) => n
            .clamp(1, MAX_TRANSITION_ROWS)
            .min((avail / 5).max(1))
            .min(avail),
        None => 0,
    };
    avail -= transition_rows;
    // The rollup gets up to a quarter of the rows, the workers the rest; what the workers do
    // not need goes back to the rollup.
    let hives_need = hives.max(1);
    let workers_need = workers.max(1);
    let mut hive_lines = hives_need.min((avail / 4).max(avail.min(3)));
    let spare = (avail - hive_lines).saturating_sub(workers_need);
    hive_lines = (hive_lines + spare).min(hives_need);
    let worker_lines = avail - hive_lines;
    (
        rows_with_hint(hives, hive_lines),
        rows_with_hint(workers, worker_lines),
        transition_rows,
    )
}

/// Rows that fit in `lines` when a table of `n` rows that does not fit also needs a hint line.
fn rows_with_hint(n: usize, lines: usize) -> usize {
    if n <= lines {
        n
    } else {
        lines.saturating_sub(1)
    }
}

fn bounded<T>(items: &[T], rows: usize) -> &[T] {
    &items[..items.len().min(rows)]
}

fn lines(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::fleet::{
        Listing,
        tests::{hive_json, worker_json},
    };

    /// 10,000 workers on 20 hives: every 1,000th offline, every 1,500th unhealthy, one in
    /// conflict, and one hive offline.
    fn big_fleet() -> Fleet {
        let workers: Vec<Value> = (0..10_000)
            .map(|i| {
                let state = if i % 1000 == 7 { "offline" } else { "online" };
                let mut w = worker_json(&format!("w{i:05}"), &format!("h{:02}", i % 20), state);
                if i % 1500 == 11 {
                    w["worker"]["health"] =
                        json!({"status": "unhealthy", "reason": "backend down"});
                }
                if i == 4242 {
                    w["conflict"] = json!(true);
                }
                w
            })
            .collect();
        let hives: Vec<Value> = (0..20)
            .map(|i| {
                hive_json(
                    &format!("h{i:02}"),
                    if i == 13 { "offline" } else { "online" },
                )
            })
            .collect();
        let listing: Listing = serde_json::from_value(json!({
            "epoch": "e", "revision": 1, "workers": workers, "hives": hives
        }))
        .unwrap();
        Fleet::from_listing(listing, Instant::now())
    }

    fn watch_opts(lines: usize) -> Options {
        Options {
            filter: ViewArgs::default(),
            ages: Ages::Live,
            bound: Bound::Lines(lines),
            transitions: true,
        }
    }

    fn status_opts() -> Options {
        Options {
            filter: ViewArgs::default(),
            ages: Ages::Exact,
            bound: Bound::Rows(50),
            transitions: false,
        }
    }

    fn worker_lines(out: &[String]) -> Vec<&String> {
        out.iter().filter(|l| l.starts_with('w')).collect()
    }

    #[test]
    fn a_terminal_of_any_height_gets_at_most_that_many_lines() {
        let fleet = big_fleet();
        let now = Instant::now();
        for height in [5, 12, 24, 40, 80, 200] {
            let out = render(&fleet, &["header".to_owned()], &watch_opts(height), now);
            assert!(out.len() <= height, "{height} lines: got {}", out.len());
            if height >= 24 {
                assert!(out.len() >= height - 2, "{height} lines: got {}", out.len());
                assert!(
                    out.iter()
                        .any(|l| l.contains("--all, --state STATE or --hive ID"))
                );
                assert!(out[1].starts_with("WORKERS: 9990 online"), "{}", out[1]);
                assert!(out[2].starts_with("HIVES: 19 online"), "{}", out[2]);
            }
        }
    }

    #[test]
    fn problems_come_first_and_counts_lead() {
        let fleet = big_fleet();
        let out = render(&fleet, &[], &watch_opts(40), Instant::now());
        let text = out.join("\n");
        // 10 offline, 7 unhealthy, 1 in conflict.
        assert!(
            out[0].contains("10 offline") && out[0].contains("18 with problems"),
            "{text}"
        );
        let rows = worker_lines(&out);
        assert!(rows[0].starts_with("w00007 "), "{text}");
        assert!(rows[0].contains("offline"), "{text}");
        let first_healthy = rows.iter().position(|l| !l.contains("offline")).unwrap();
        assert_eq!(first_healthy, 10, "{text}");
        assert!(
            rows[first_healthy].contains("unhealthy: backend down"),
            "{text}"
        );
        // The offline hive, then hives with problem workers, lead the rollup.
        let hive_rows: Vec<&String> = out.iter().filter(|l| l.starts_with('h')).collect();
        assert!(
            hive_rows[0].starts_with("h13 ") && hive_rows[0].contains("offline"),
            "{text}"
        );
        // Online entries' last beat is not sent by the watch, so their age reads "live".
        assert!(rows[first_healthy].contains(" live "), "{text}");
    }

    #[test]
    fn status_bounds_each_table_and_hints_how_to_see_more() {
        let fleet = big_fleet();
        let out = render(&fleet, &[], &status_opts(), Instant::now());
        assert_eq!(worker_lines(&out).len(), 50);
        assert!(out.len() < 100, "{} lines", out.len());
        let hint = out.iter().find(|l| l.contains("more workers")).unwrap();
        assert!(hint.contains("9950 more workers"), "{hint}");
        assert!(hint.contains("--all") && hint.contains("--state") && hint.contains("--hive"));
        assert!(out.iter().any(|l| l.contains("SKEW")));
    }

    #[test]
    fn all_shows_every_row_and_filters_narrow_it() {
        let fleet = big_fleet();
        let now = Instant::now();
        let mut opts = status_opts();
        opts.filter.all = true;
        let out = render(&fleet, &[], &opts, now);
        assert_eq!(worker_lines(&out).len(), 10_000);
        assert!(!out.iter().any(|l| l.contains("more workers")));

        let mut opts = status_opts();
        opts.filter.state = Some(StateFilter::Offline);
        let out = render(&fleet, &[], &opts, now);
        let rows = worker_lines(&out);
        assert_eq!(rows.len(), 10);
        assert!(rows.iter().all(|l| l.contains("offline")));
        assert!(
            out.iter()
                .any(|l| l.contains("showing --state offline: 1 hives, 10 workers match"))
        );

        let mut opts = status_opts();
        opts.filter.hive = Some("h07".to_owned());
        let out = render(&fleet, &[], &opts, now);
        let rows = worker_lines(&out);
        assert_eq!(rows.len(), 50);
        assert!(rows.iter().all(|l| l.contains(" h07 ")));
        // The hive's details (machine columns) are shown for --hive.
        assert!(out.iter().any(|l| l.contains("MEMORY USED")));
    }

    #[test]
    fn an_empty_fleet_says_so() {
        let out = render(&Fleet::default(), &[], &watch_opts(40), Instant::now());
        assert!(out.contains(&"no hives".to_owned()));
        assert!(out.contains(&"no workers".to_owned()));
        assert!(out.contains(&"  (none yet)".to_owned()));
    }

    #[test]
    fn sharing_gives_spare_rows_to_whoever_needs_them() {
        // Few workers: the rollup takes what they leave.
        assert_eq!(share(30, 100, 5, None), (24, 5, 0));
        // Few hives: workers take the rest, less a hint line.
        assert_eq!(share(30, 3, 100, None), (3, 26, 0));
        // Both large: a quarter for the rollup.
        assert_eq!(share(40, 100, 100, Some(20)), (7, 23, 8));
        // Nothing fits without crashing.
        assert_eq!(share(0, 100, 100, Some(3)), (0, 0, 0));
    }
}
