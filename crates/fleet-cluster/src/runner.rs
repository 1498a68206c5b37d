//! The etcd client thread: the session (lease and membership), the election, the leader's
//! writer and the followers' mirror. Everything here runs on one current-thread runtime of its
//! own, so the keep-alive never waits behind the queen's work.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, PutOptions,
    Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use fleet_store::KeptEntry;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::{
    Change, ClusterConfig, Command, Event, LOG_KEEP, Loaded, Shared,
    keys::{Keys, prefix_end},
    wire::{self, Meta},
};

/// Changes per transaction: each writes its entry and its log key, and the meta key and the
/// log trim take two more, within etcd's 128 operations.
const MAX_CHANGES_PER_TXN: usize = 62;
/// Bytes per transaction, well under etcd's 1.5 MiB request limit.
const MAX_TXN_BYTES: usize = 1024 * 1024;
/// etcd keeps every old version until compacted: every this many etcd revisions the leader
/// compacts all but the last [`COMPACT_KEEP`], which bounds etcd's history.
const COMPACT_EVERY: i64 = 5_000;
const COMPACT_KEEP: i64 = 1_000;
/// Entries read per range request when loading.
const PAGE: i64 = 1_000;
/// The largest message accepted from etcd (a page of entries, a watch response).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// How long one unary request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// How often the leader looks at its lease while idle.
const TICK: Duration = Duration::from_millis(50);
/// How long a lapsed term waits for the queen to hand over its last changes.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// Why an etcd step failed.
#[derive(Debug)]
pub(crate) enum Failure {
    Etcd(etcd_client::Error),
    Timeout,
    Broken(&'static str),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Etcd(error) => write!(f, "{error}"),
            Failure::Timeout => write!(f, "no answer within {REQUEST_TIMEOUT:?}"),
            Failure::Broken(what) => f.write_str(what),
        }
    }
}

impl From<etcd_client::Error> for Failure {
    fn from(error: etcd_client::Error) -> Self {
        Failure::Etcd(error)
    }
}

type Result<T> = std::result::Result<T, Failure>;

/// One etcd request, bounded in time (streams are not: a watch lives as long as it is needed).
async fn bounded<T>(
    request: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
) -> Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Failure::Timeout),
    }
}

/// How a session or a term ended.
enum End {
    /// The queen stops; answer when done.
    Stop(Option<oneshot::Sender<()>>),
    /// The lease expired: start a new session.
    SessionLost,
    /// Another queen holds the leader key now.
    Fenced,
}

pub(crate) struct Runner {
    config: ClusterConfig,
    keys: Keys,
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Event>,
    commands: mpsc::UnboundedReceiver<Command>,
    committed: watch::Sender<u64>,
    epoch: String,
    /// The leader's changes not yet committed, in revision order.
    pending: VecDeque<Change>,
    /// The term whose changes are accepted.
    term: u64,
    /// The etcd revision compacted up to.
    compacted: i64,
}

pub(crate) fn run(runner: Runner) {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(runner.run()),
        Err(error) => error!(%error, "cannot start the etcd client runtime"),
    }
}

impl Runner {
    pub(crate) fn new(
        config: ClusterConfig,
        shared: Arc<Shared>,
        events: mpsc::UnboundedSender<Event>,
        commands: mpsc::UnboundedReceiver<Command>,
        committed: watch::Sender<u64>,
    ) -> Self {
        Self {
            keys: Keys::new(&config.name),
            config,
            shared,
            events,
            commands,
            committed,
            epoch: String::new(),
            pending: VecDeque::new(),
            term: 0,
            compacted: 0,
        }
    }

    async fn run(mut self) {
        let mut backoff = RETRY_MIN;
        let mut down = false;
        let done = loop {
            match self.session().await {
                Ok(End::Stop(done)) => break done,
                Ok(_) => backoff = RETRY_MIN,
                Err(error) => {
                    self.shared.etcd_ok.store(false, Ordering::Relaxed);
                    if !down {
                        warn!(endpoints = %self.config.endpoints.join(","), %error, "etcd unreachable; retrying");
                        down = true;
                    }
                    if let Some(End::Stop(done)) = self.pause(backoff).await {
                        break done;
                    }
                    backoff = (backoff * 2).min(RETRY_MAX);
                    continue;
                }
            }
            if down {
                info!("etcd reachable again");
                down = false;
            }
        };
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    /// Sleeps for `pause` while answering commands; returns early on a stop.
    async fn pause(&mut self, pause: Duration) -> Option<End> {
        let until = tokio::time::Instant::now() + pause;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => return None,
                command = self.commands.recv() => {
                    if let Some(end) = self.accept(command) {
                        return Some(end);
                    }
                }
            }
        }
    }

    /// Takes every command already queued, without waiting.
    fn take_queued(&mut self) -> Option<End> {
        while let Ok(command) = self.commands.try_recv() {
            if let Some(end) = self.accept(Some(command)) {
                return Some(end);
            }
        }
        None
    }

    /// Takes one command: the current term's changes are queued, stale ones dropped.
    fn accept(&mut self, command: Option<Command>) -> Option<End> {
        match command {
            None => Some(End::Stop(None)),
            Some(Command::Stop(done)) => Some(End::Stop(Some(done))),
            Some(Command::Record { term, changes }) => {
                if term == self.term && term != 0 {
                    self.pending.extend(changes);
                } else {
                    debug!(
                        term,
                        changes = changes.len(),
                        "dropping changes of an ended term"
                    );
                }
                None
            }
            Some(Command::Drained { .. }) => None,
        }
    }

    /// One session: connect, take a lease, register, follow or lead until the lease is lost.
    async fn session(&mut self) -> Result<End> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_keep_alive(Duration::from_secs(1), Duration::from_secs(1))
            .with_keep_alive_while_idle(true);
        let mut client = bounded(Client::connect(&self.config.endpoints, Some(options))).await?;
        self.ensure_meta(&mut client).await?;
        let ttl_secs = i64::try_from(self.config.lease.as_secs().max(1)).unwrap_or(i64::MAX);
        let sent = Instant::now();
        let lease = bounded(client.lease_grant(ttl_secs, None)).await?;
        let lease_id = lease.id();
        let ttl = Duration::from_secs(u64::try_from(lease.ttl()).unwrap_or(0));
        self.shared.gate.renewed(sent, ttl);
        self.shared.etcd_ok.store(true, Ordering::Relaxed);
        bounded(client.put(
            self.keys.member(&self.config.advertise_url),
            self.config.advertise_url.as_bytes(),
            Some(PutOptions::new().with_lease(lease_id)),
        ))
        .await?;
        let (alive_tx, alive) = watch::channel(true);
        let keeper = tokio::spawn(keep_alive(
            client.clone(),
            lease_id,
            ttl,
            Arc::clone(&self.shared),
            self.keys.clone(),
            alive_tx,
        ));
        let ended = self.follow_or_lead(&mut client, lease_id, alive).await;
        keeper.abort();
        if let Ok(End::Stop(_)) = &ended {
            // Giving the lease back deletes the leader and member keys at once: another queen
            // takes over now instead of one lease later.
            let _ = bounded(client.lease_revoke(lease_id)).await;
        }
        self.shared.gate.lease_lost();
        self.pending.clear();
        self.term = 0;
        ended
    }

    /// Creates the cluster's meta key (a new epoch at revision 0) unless it exists.
    async fn ensure_meta(&self, client: &mut Client) -> Result<()> {
        let meta = Meta {
            epoch: format!("{:016x}", rand::random::<u64>()),
            revision: 0,
        };
        let txn = Txn::new()
            .when([Compare::version(self.keys.meta(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(self.keys.meta(), wire::encode_meta(&meta), None)]);
        let created = bounded(client.txn(txn)).await?.succeeded();
        if created {
            info!(cluster = %self.config.name, epoch = %meta.epoch, "created the cluster's state in etcd");
        }
        Ok(())
    }

    async fn follow_or_lead(
        &mut self,
        client: &mut Client,
        lease: i64,
        mut alive: watch::Receiver<bool>,
    ) -> Result<End> {
        let mut mirror = self.follow(client).await?;
        let mut backoff = RETRY_MIN;
        loop {
            let campaign = match self.campaign(client, lease).await {
                Ok(campaign) => campaign,
                Err(error) => {
                    debug!(%error, "campaign failed; retrying");
                    if !*alive.borrow() {
                        mirror.abort();
                        return Ok(End::SessionLost);
                    }
                    if let Some(end) = self.pause(backoff).await {
                        mirror.abort();
                        return Ok(end);
                    }
                    backoff = (backoff * 2).min(RETRY_MAX);
                    continue;
                }
            };
            backoff = RETRY_MIN;
            match campaign {
                Campaign::Won { fence } => {
                    mirror.abort();
                    match self.lead(client, fence, &mut alive).await {
                        End::Fenced => {
                            self.shared.gate.close();
                            self.term = 0;
                            warn!("this queen lost the leadership");
                            self.shared.set_leader(None);
                            mirror = self.follow(client).await?;
                        }
                        end => return Ok(end),
                    }
                }
                Campaign::Lost { leader, revision } => {
                    self.shared.set_leader(Some(leader));
                    match self.await_vacancy(client, revision, &mut alive).await {
                        Ok(None) => {}
                        Ok(Some(end)) => {
                            mirror.abort();
                            return Ok(end);
                        }
                        Err(error) => {
                            debug!(%error, "watching the leader key failed; retrying");
                            if let Some(end) = self.pause(backoff).await {
                                mirror.abort();
                                return Ok(end);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Loads the state, tells the queen to follow it, and starts the mirror's watch.
    async fn follow(&mut self, client: &mut Client) -> Result<tokio::task::JoinHandle<()>> {
        let (loaded, at) = load(client, &self.keys).await?;
        self.epoch.clone_from(&loaded.epoch);
        let revision = loaded.revision;
        let _ = self.events.send(Event::Follow(loaded));
        Ok(tokio::spawn(mirror(
            client.clone(),
            self.keys.clone(),
            at + 1,
            revision,
            self.events.clone(),
        )))
    }

    /// Tries to take the leader key; otherwise returns who holds it.
    async fn campaign(&self, client: &mut Client, lease: i64) -> Result<Campaign> {
        let key = self.keys.leader();
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                self.config.advertise_url.as_bytes(),
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key, None)]);
        let response = bounded(client.txn(txn)).await?;
        let revision = response.header().map_or(0, |h| h.revision());
        if response.succeeded() {
            return Ok(Campaign::Won { fence: revision });
        }
        for op in response.op_responses() {
            if let TxnOpResponse::Get(get) = op
                && let Some(kv) = get.kvs().first()
            {
                let leader = String::from_utf8_lossy(kv.value()).into_owned();
                return Ok(Campaign::Lost { leader, revision });
            }
        }
        Err(Failure::Broken(
            "the leader key vanished during the campaign",
        ))
    }

    /// Waits until the leader key is deleted (`None`), the session ends, or the queen stops.
    async fn await_vacancy(
        &mut self,
        client: &mut Client,
        revision: i64,
        alive: &mut watch::Receiver<bool>,
    ) -> Result<Option<End>> {
        let options = WatchOptions::new().with_start_revision(revision + 1);
        let mut stream = client.watch(self.keys.leader(), Some(options)).await?;
        loop {
            tokio::select! {
                message = stream.message() => {
                    let Some(response) = message? else {
                        return Err(Failure::Broken("the leader watch ended"));
                    };
                    if response.canceled() {
                        return Ok(None);
                    }
                    for event in response.events() {
                        match event.event_type() {
                            EventType::Delete => return Ok(None),
                            EventType::Put => {
                                if let Some(kv) = event.kv() {
                                    self.shared.set_leader(Some(String::from_utf8_lossy(kv.value()).into_owned()));
                                }
                            }
                        }
                    }
                }
                changed = alive.changed() => {
                    if changed.is_err() || !*alive.borrow() {
                        return Ok(Some(End::SessionLost));
                    }
                }
                command = self.commands.recv() => {
                    if let Some(end) = self.accept(command) {
                        return Ok(Some(end));
                    }
                }
            }
        }
    }

    /// Leads while the leader key created at revision `fence` is ours: one term after another
    /// (a term ends when the lease could not be renewed in time).
    async fn lead(
        &mut self,
        client: &mut Client,
        fence: i64,
        alive: &mut watch::Receiver<bool>,
    ) -> End {
        info!(url = %self.config.advertise_url, "this queen leads the cluster");
        self.shared.counters.elected.fetch_add(1, Ordering::Relaxed);
        self.shared
            .set_leader(Some(self.config.advertise_url.clone()));
        loop {
            // A term starts only on a live lease, with the last term's changes committed.
            while !self.shared.gate.lease_alive(Instant::now()) {
                if !*alive.borrow() {
                    return End::SessionLost;
                }
                if let Some(end) = self.pause(TICK).await {
                    return end;
                }
            }
            if let Some(end) = self.flush(client, fence, alive).await {
                return end;
            }
            let term = self.shared.gate.begin_term();
            self.term = term;
            let loaded = match load(client, &self.keys).await {
                Ok((loaded, _)) => loaded,
                Err(error) => {
                    debug!(%error, "loading the state to take over failed; retrying");
                    self.shared.gate.close();
                    if let Some(end) = self.pause(RETRY_MIN).await {
                        return end;
                    }
                    continue;
                }
            };
            let _ = self.events.send(Event::Lead { term, loaded });
            if let Some(end) = self.serve_term(client, fence, term, alive).await {
                return end;
            }
            warn!("the lease could not be renewed in time; this queen stopped judging");
            let _ = self.events.send(Event::Lapsed { term });
            if let Some(end) = self.await_drained(term).await {
                return end;
            }
        }
    }

    /// Commits the term's changes as they come; returns when the term lapsed (`None`) or ended.
    async fn serve_term(
        &mut self,
        client: &mut Client,
        fence: i64,
        term: u64,
        alive: &mut watch::Receiver<bool>,
    ) -> Option<End> {
        let mut backoff = RETRY_MIN;
        loop {
            if !self.shared.gate.lease_alive(Instant::now()) {
                self.shared.gate.close();
            }
            if !self.shared.gate.term_alive(term) {
                return None;
            }
            // Group commit: everything handed over while the last transaction was in flight
            // goes into the next ones, up to the per-transaction limits.
            if let Some(end) = self.take_queued() {
                return Some(self.stopping(client, fence, end).await);
            }
            if !self.pending.is_empty() {
                match self.commit(client, fence).await {
                    Ok(true) => backoff = RETRY_MIN,
                    Ok(false) => return Some(End::Fenced),
                    Err(error) => {
                        debug!(%error, "etcd write failed; retrying");
                        if let Some(end) = self.pause(backoff).await {
                            return Some(self.stopping(client, fence, end).await);
                        }
                        backoff = (backoff * 2).min(RETRY_MAX);
                    }
                }
                continue;
            }
            tokio::select! {
                command = self.commands.recv() => {
                    if let Some(end) = self.accept(command) {
                        return Some(self.stopping(client, fence, end).await);
                    }
                }
                changed = alive.changed() => {
                    if changed.is_err() || !*alive.borrow() {
                        return Some(End::SessionLost);
                    }
                }
                () = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// On a stop while leading: commit what is pending first, for a bounded time.
    async fn stopping(&mut self, client: &mut Client, fence: i64, end: End) -> End {
        let deadline = Instant::now() + Duration::from_secs(1);
        while !self.pending.is_empty() && Instant::now() < deadline {
            match self.commit(client, fence).await {
                Ok(true) => {}
                Ok(false) | Err(_) => break,
            }
        }
        end
    }

    /// Commits everything pending, retrying while etcd is away; `Some` when it cannot.
    async fn flush(
        &mut self,
        client: &mut Client,
        fence: i64,
        alive: &watch::Receiver<bool>,
    ) -> Option<End> {
        let mut backoff = RETRY_MIN;
        if let Some(end) = self.take_queued() {
            return Some(end);
        }
        while !self.pending.is_empty() {
            match self.commit(client, fence).await {
                Ok(true) => backoff = RETRY_MIN,
                Ok(false) => return Some(End::Fenced),
                Err(_) => {
                    if !*alive.borrow() {
                        return Some(End::SessionLost);
                    }
                    if let Some(end) = self.pause(backoff).await {
                        return Some(end);
                    }
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
        }
        None
    }

    /// Waits for the queen to hand over a lapsed term's last changes.
    async fn await_drained(&mut self, term: u64) -> Option<End> {
        let deadline = tokio::time::Instant::now() + DRAIN_WAIT;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    warn!(term, "the queen did not hand over its last changes in time");
                    return None;
                }
                command = self.commands.recv() => match command {
                    Some(Command::Drained { term: drained }) if drained == term => return None,
                    other => {
                        if let Some(end) = self.accept(other) {
                            return Some(end);
                        }
                    }
                }
            }
        }
    }

    /// Commits the oldest pending changes in one transaction, fenced on the leader key.
    /// `Ok(false)`: the key is no longer ours, nothing was written and nothing will be.
    async fn commit(&mut self, client: &mut Client, fence: i64) -> Result<bool> {
        let mut entries: Vec<TxnOp> = Vec::new();
        let mut entry_index: HashMap<(&str, &str), usize> = HashMap::new();
        let mut logs = Vec::new();
        let mut bytes = 0;
        let mut count: usize = 0;
        for change in self.pending.iter().take(MAX_CHANGES_PER_TXN) {
            let log = wire::encode_change(change);
            let size = log.len() + change.kept.as_ref().map_or(0, String::len);
            if count > 0 && bytes + size > MAX_TXN_BYTES {
                break;
            }
            bytes += size;
            count += 1;
            let key = self.keys.entry(&change.kind, &change.id);
            let op = match &change.kept {
                Some(kept) => TxnOp::put(key, kept.as_bytes(), None),
                None => TxnOp::delete(key, None),
            };
            // etcd refuses a transaction that writes one key twice: the last change wins.
            match entry_index.get(&(change.kind.as_str(), change.id.as_str())) {
                Some(&index) => entries[index] = op,
                None => {
                    entry_index.insert((change.kind.as_str(), change.id.as_str()), entries.len());
                    entries.push(op);
                }
            }
            logs.push(TxnOp::put(self.keys.log_at(change.revision), log, None));
        }
        let Some(last) = self
            .pending
            .get(count.saturating_sub(1))
            .map(|c| c.revision)
        else {
            return Ok(true);
        };
        let meta = Meta {
            epoch: self.epoch.clone(),
            revision: last,
        };
        let mut ops = entries;
        let written = ops.len() + logs.len();
        ops.append(&mut logs);
        ops.push(TxnOp::put(self.keys.meta(), wire::encode_meta(&meta), None));
        if last > LOG_KEEP {
            let end = self.keys.log_at(last - LOG_KEEP + 1);
            ops.push(TxnOp::delete(
                self.keys.log(),
                Some(DeleteOptions::new().with_range(end)),
            ));
        }
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.keys.leader(),
                CompareOp::Equal,
                fence,
            )])
            .and_then(ops);
        let response = bounded(client.txn(txn)).await?;
        if !response.succeeded() {
            self.pending.clear();
            return Ok(false);
        }
        self.pending.drain(..count);
        self.committed.send_replace(last);
        let counters = &self.shared.counters;
        counters.txns.fetch_add(1, Ordering::Relaxed);
        counters
            .ops
            .fetch_add(written as u64 + 1, Ordering::Relaxed);
        let at = response.header().map_or(0, |h| h.revision());
        if at - self.compacted > COMPACT_EVERY {
            let to = at - COMPACT_KEEP;
            match bounded(client.compact(to, None)).await {
                Ok(_) => debug!(revision = to, "compacted etcd's history"),
                Err(error) => debug!(%error, "compaction failed; it is tried again later"),
            }
            self.compacted = to;
        }
        Ok(true)
    }
}

enum Campaign {
    Won { fence: i64 },
    Lost { leader: String, revision: i64 },
}

/// Reads the meta key and every entry at one etcd revision, which it returns too.
pub(crate) async fn load(client: &Client, keys: &Keys) -> Result<(Loaded, i64)> {
    let mut kv = client.kv_client().max_decoding_message_size(MAX_MESSAGE);
    let response = bounded(kv.get(keys.meta(), None)).await?;
    let at = response.header().map_or(0, |h| h.revision());
    let meta = response
        .kvs()
        .first()
        .and_then(|kv| wire::decode_meta(kv.value()))
        .ok_or(Failure::Broken(
            "the cluster's meta key is missing or damaged",
        ))?;
    let prefix = keys.entries();
    let end = prefix_end(&prefix);
    let mut from = prefix.into_bytes();
    let mut entries = Vec::new();
    loop {
        let options = GetOptions::new()
            .with_range(end.clone())
            .with_revision(at)
            .with_limit(PAGE);
        let page = bounded(kv.get(from.clone(), Some(options))).await?;
        for kv in page.kvs() {
            let Ok(key) = kv.key_str() else { continue };
            if let Some((kind, id)) = keys.parse_entry(key) {
                entries.push(KeptEntry {
                    kind: kind.to_owned(),
                    id: id.to_owned(),
                    body: String::from_utf8_lossy(kv.value()).into_owned(),
                });
            }
        }
        match page.kvs().last() {
            Some(last) if page.more() => {
                from = last.key().to_vec();
                from.push(0);
            }
            _ => break,
        }
    }
    let loaded = Loaded {
        epoch: meta.epoch,
        revision: meta.revision,
        entries,
    };
    Ok((loaded, at))
}

/// Renews the lease every third of its time to live, keeps the gate's deadline and the
/// member list current, and says when the lease is gone.
async fn keep_alive(
    client: Client,
    lease: i64,
    ttl: Duration,
    shared: Arc<Shared>,
    keys: Keys,
    alive: watch::Sender<bool>,
) {
    let period = (ttl / 3).max(Duration::from_millis(200));
    let mut lease_client = client.lease_client();
    let mut kv = client.kv_client();
    let mut stream = None;
    loop {
        let sent = Instant::now();
        let renewal = tokio::time::timeout(period, async {
            if stream.is_none() {
                stream = Some(lease_client.keep_alive(lease).await?);
            }
            let Some((keeper, responses)) = stream.as_mut() else {
                return Ok(None);
            };
            keeper.keep_alive().await?;
            responses.message().await
        })
        .await;
        match renewal {
            Ok(Ok(Some(response))) if response.ttl() > 0 => {
                shared.gate.renewed(
                    sent,
                    Duration::from_secs(u64::try_from(response.ttl()).unwrap_or(0)),
                );
                shared.etcd_ok.store(true, Ordering::Relaxed);
                let options = GetOptions::new().with_prefix();
                if let Ok(Ok(members)) =
                    tokio::time::timeout(period, kv.get(keys.members(), Some(options))).await
                {
                    let mut urls: Vec<String> = members
                        .kvs()
                        .iter()
                        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
                        .collect();
                    urls.sort();
                    *shared.members.write() = urls;
                }
            }
            Ok(Ok(Some(_))) => {
                warn!("the etcd lease expired");
                shared.gate.lease_lost();
                let _ = alive.send(false);
                return;
            }
            _ => {
                stream = None;
                if !shared.gate.lease_alive(Instant::now()) {
                    shared.etcd_ok.store(false, Ordering::Relaxed);
                }
            }
        }
        tokio::time::sleep_until((sent + period).into()).await;
    }
}

/// The followers' mirror: watches the log keys from etcd revision `from` and hands each
/// change after `revision` to the queen, in order; reloads everything when the watch can no
/// longer deliver every change (etcd compacted past it).
async fn mirror(
    client: Client,
    keys: Keys,
    mut from: i64,
    mut revision: u64,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut backoff = RETRY_MIN;
    loop {
        match watch_log(&client, &keys, &mut from, &mut revision, &events).await {
            Ok(()) => {
                // A gap: the watch cannot deliver every change any more.
                match load(&client, &keys).await {
                    Ok((loaded, at)) => {
                        info!(
                            revision = loaded.revision,
                            "the mirror fell behind etcd's history; reloaded"
                        );
                        revision = loaded.revision;
                        from = at + 1;
                        let _ = events.send(Event::Follow(loaded));
                        backoff = RETRY_MIN;
                    }
                    Err(error) => {
                        debug!(%error, "reloading the mirror failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(RETRY_MAX);
                    }
                }
            }
            Err(error) => {
                debug!(%error, "the mirror's watch failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_MAX);
            }
        }
    }
}

/// Returns `Ok` when the mirror must reload, `Err` when the watch broke (resume from `from`).
async fn watch_log(
    client: &Client,
    keys: &Keys,
    from: &mut i64,
    revision: &mut u64,
    events: &mpsc::UnboundedSender<Event>,
) -> Result<()> {
    let mut watch = client.watch_client().max_decoding_message_size(MAX_MESSAGE);
    let options = WatchOptions::new().with_prefix().with_start_revision(*from);
    let mut stream = watch.watch(keys.log(), Some(options)).await?;
    while let Some(response) = stream.message().await? {
        if response.canceled() {
            return Ok(());
        }
        let mut changes = Vec::new();
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            *from = (*from).max(kv.mod_revision() + 1);
            if event.event_type() != EventType::Put {
                continue;
            }
            let Some(change) = wire::decode_change(kv.value()) else {
                warn!("a change in etcd does not decode; reloading");
                return Ok(());
            };
            if change.revision <= *revision {
                continue;
            }
            if change.revision != *revision + 1 {
                return Ok(());
            }
            *revision = change.revision;
            changes.push(change);
        }
        if !changes.is_empty() && events.send(Event::Changes(changes)).is_err() {
            return Err(Failure::Broken("the queen stopped listening"));
        }
    }
    Err(Failure::Broken("the watch ended"))
}
