//! The sender task: the core's messages, several rooms at once (at most
//! [`ROOMS_IN_FLIGHT`]) and one at a time within a room, so that each room keeps their order
//! (an edit or a reply comes after the message it refers to); with edits of tagged messages,
//! reactions, receipts for the durable outbox, and retries of transient failures (the SDK
//! itself waits out 429s for the `retry_after_ms` the server asks; a rate limit that still
//! reaches the sender pauses every room's next attempt, as the limit is the bot's own).
//!
//! When relayed lines of one speaker pile up behind a room's message in flight (an IRC paste
//! or a flood faster than the homeserver takes events), the room's next event carries all
//! that wait, one line each (at most [`MERGE_MAX_LINES`] and [`MERGE_MAX_BYTES`]): a room then
//! keeps up with any rate its homeserver can take in events, without delaying a line that
//! finds the room idle.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt as _};
use matrix_sdk::ruma::api::error::ErrorKind;
use matrix_sdk::ruma::events::Mentions;
use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
use matrix_sdk::ruma::{OwnedEventId, TransactionId};
use matrix_sdk::{Client, Room};
use rand::Rng as _;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::Backoff;
use super::rooms::{self, RoomNames};
use crate::adapters::{Outgoing, OutgoingOp, SHUTDOWN_GRACE};
use crate::config::MatrixConfig;
use crate::core::{Event, RoomRef, SendKind};
use crate::metrics::NetworkMetrics;

/// Attempts to send one message before it is dropped (429s are waited out by the SDK).
const SEND_ATTEMPTS: u32 = 8;

/// Rooms sent to at once.
pub const ROOMS_IN_FLIGHT: usize = 8;

/// Messages the sender takes from its queue ahead of sending them (spread over the rooms);
/// past that it leaves the rest in the queue.
const HELD_MAX: usize = 1024;

/// How many outbox messages the Matrix adapter takes before their verdicts: enough for
/// every room in flight to have a few waiting behind it.
pub const MATRIX_WINDOW: usize = 64;

/// The most relayed lines one event carries when they wait for their room together.
pub const MERGE_MAX_LINES: usize = 32;

/// The most bytes of text and HTML those lines take together: far below the event size limit,
/// so that a merged event is never cut.
pub const MERGE_MAX_BYTES: usize = 8 * 1024;

/// Sends the core's messages, in order within each room.
pub(super) struct Sender {
    /// The event IDs of the bot's tagged messages, for later edits.
    pub(super) tagged: Mutex<HashMap<String, OwnedEventId>>,
    pub(super) client: watch::Receiver<Option<Client>>,
    pub(super) cfg: MatrixConfig,
    pub(super) names: Arc<Mutex<RoomNames>>,
    pub(super) shutdown: CancellationToken,
    /// Where the event IDs of relayed messages are reported (for replies to them).
    pub(super) events: mpsc::Sender<Event>,
    /// Messages written.
    pub(super) metrics: NetworkMetrics,
    /// After a rate limit that reached the sender: no room sends before this.
    pub(super) paused_until: Mutex<Option<Instant>>,
}

impl Sender {
    #[tracing::instrument(skip_all, fields(network = %self.cfg.name))]
    pub(super) async fn run(self, mut rx: mpsc::Receiver<Outgoing>) {
        // Runs until every handle is gone (after the core's last answer), so that nothing
        // queued before shutdown is lost.
        let mut rooms = RoomQueues::default();
        let mut in_flight = FuturesUnordered::new();
        let mut open = true;
        loop {
            while in_flight.len() < ROOMS_IN_FLIGHT
                && let Some((room, batch)) = rooms.start_next()
            {
                in_flight.push(self.send_in(room, batch));
            }
            if !open && in_flight.is_empty() {
                return;
            }
            tokio::select! {
                out = rx.recv(), if open && rooms.held < HELD_MAX => match out {
                    Some(out) => rooms.push(out),
                    None => open = false,
                },
                Some(room) = in_flight.next() => rooms.done(room),
            }
        }
    }

    /// Sends one event of `room` (one message, or lines merged by [`RoomQueues::start_next`]);
    /// the room, once done.
    async fn send_in(&self, room: String, batch: Vec<Outgoing>) -> String {
        self.send(&batch).await;
        room
    }

    async fn send(&self, batch: &[Outgoing]) {
        let Some(out) = batch.first() else {
            return;
        };
        let Some(room) = self.target_room(out).await else {
            batch.iter().for_each(|o| o.receipt.dropped());
            return;
        };
        let content = if batch.len() > 1 {
            Some(("m.room.message", merged_content(batch)))
        } else {
            self.content(out)
        };
        let Some((event_type, content)) = content else {
            return;
        };
        self.deliver(&room, batch, event_type, content).await;
    }

    /// The joined room the message goes to, once logged in; `None` (logged) when it cannot
    /// go anywhere.
    async fn target_room(&self, out: &Outgoing) -> Option<Room> {
        // Waits for the first login; fails once the driver has stopped.
        let client = match self.client.clone().wait_for(Option::is_some).await {
            Ok(c) => c.clone().expect("checked by wait_for"),
            Err(_) => {
                tracing::warn!(room = %out.room, "never logged in; message dropped");
                return None;
            }
        };
        let Some(room) = rooms::joined_room(&client, &self.names, &out.room).await else {
            tracing::warn!(room = %out.room, "not in this room; message dropped");
            return None;
        };
        if !self.cfg.encrypted_rooms && room.encryption_state().is_encrypted() {
            tracing::warn!(room = %out.room, "encrypted room, but encrypted_rooms = false; message dropped");
            return None;
        }
        Some(room)
    }

    /// The event type and content to send; `None` (without a verdict) for an edit of a
    /// message never sent or a reaction to something that is not an event ID.
    fn content(&self, out: &Outgoing) -> Option<(&'static str, Value)> {
        match &out.op {
            OutgoingOp::Message | OutgoingOp::Tagged(_) => Some((
                "m.room.message",
                serde_json::to_value(message_content(out)).expect("event content serializes"),
            )),
            OutgoingOp::Edit(tag) => {
                let Some(of) = self.tagged.lock().unwrap().get(tag).cloned() else {
                    tracing::debug!(room = %out.room, %tag, "nothing sent under this tag; edit dropped");
                    return None;
                };
                Some(("m.room.message", edit_content(out, of)))
            }
            OutgoingOp::React { to, key } => {
                let Ok(to) = OwnedEventId::try_from(to.as_str()) else {
                    tracing::debug!(room = %out.room, %to, "not an event ID; reaction dropped");
                    return None;
                };
                Some(("m.reaction", reaction_content(to, key)))
            }
        }
    }

    /// Sends until the homeserver takes the event, refuses it for good, or the attempts or
    /// the shutdown grace run out; every message of `batch` (the ones the event carries) gets
    /// the same verdict.
    async fn deliver(&self, room: &Room, batch: &[Outgoing], event_type: &str, content: Value) {
        let out = &batch[0];
        // One transaction ID for every attempt: the homeserver keeps a retried message once.
        let txn = TransactionId::new();
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        // A message from the durable outbox waits out a homeserver restart: the outbox
        // judges staleness. The bot's own replies give up after a few attempts.
        let attempts = if batch.iter().any(|o| o.receipt.is_wanted()) {
            u32::MAX
        } else {
            SEND_ATTEMPTS
        };
        for attempt in 1..=attempts {
            self.wait_out_rate_limit().await;
            let e = match room
                .send_raw(event_type, content.clone())
                .with_transaction_id(&txn)
                .await
            {
                Ok(sent) => {
                    let event_id = sent.response.event_id;
                    for (i, o) in batch.iter().enumerate() {
                        // The event's first line names who said it all, for replies.
                        self.on_sent(o, event_id.clone(), i == 0);
                    }
                    return;
                }
                Err(e) => e,
            };
            let permanent = is_permanent(&e);
            let stopping = self.shutdown.is_cancelled() && Instant::now() >= deadline;
            if stopping && !permanent {
                // No verdict: a bridged message stays in its outbox for the next start.
                tracing::warn!(room = %out.room, error = %e, attempt, "shutting down; message not sent");
                return;
            }
            if permanent || attempt == attempts {
                tracing::warn!(room = %out.room, error = %e, attempt, lines = batch.len(), "message dropped");
                batch.iter().for_each(|o| o.receipt.dropped());
                return;
            }
            tracing::info!(room = %out.room, error = %e, attempt, "send failed; retrying");
            let delay = backoff.next_delay(rand::rng().random());
            if is_rate_limit(&e) {
                // The limit is the bot's, not the room's: every room waits it out.
                let until = Instant::now() + delay;
                let mut paused = self.paused_until.lock().unwrap();
                *paused = Some(paused.map_or(until, |p| p.max(until)));
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// Confirms the receipt, reports a relayed message's event ID (`report`: once an event),
    /// and remembers a tagged message's for its edits.
    fn on_sent(&self, out: &Outgoing, event_id: OwnedEventId, report: bool) {
        out.receipt.sent();
        if matches!(out.op, OutgoingOp::Message | OutgoingOp::Tagged(_)) {
            self.metrics.sent();
        }
        if report && out.receipt.is_wanted() && out.kind == SendKind::Relay {
            // Never waits: the core may be waiting for room in this queue, and a lost report
            // only costs a reply its `nick:`.
            let _ = self.events.try_send(Event::Delivered {
                room: RoomRef::new(&self.cfg.name, &out.room),
                id: event_id.to_string(),
                text: out.text.clone(),
            });
        }
        if let OutgoingOp::Tagged(tag) = &out.op {
            self.tagged.lock().unwrap().insert(tag.clone(), event_id);
        }
    }
}

impl Sender {
    /// Waits until a rate limit another room ran into is over.
    async fn wait_out_rate_limit(&self) {
        let until = *self.paused_until.lock().unwrap();
        if let Some(until) = until {
            tokio::time::sleep_until(until.into()).await;
        }
    }
}

/// The messages the sender holds, by room, and which rooms may start sending: a room is
/// either sending one message (busy), waiting for a free slot (ready, in turn), or idle.
#[derive(Default)]
struct RoomQueues {
    waiting: HashMap<String, VecDeque<Outgoing>>,
    busy: HashSet<String>,
    ready: VecDeque<String>,
    /// Messages in `waiting`.
    held: usize,
}

impl RoomQueues {
    /// Takes a message: after the others of its room.
    fn push(&mut self, out: Outgoing) {
        let q = self.waiting.entry(out.room.clone()).or_default();
        if q.is_empty() && !self.busy.contains(&out.room) {
            self.ready.push_back(out.room.clone());
        }
        q.push_back(out);
        self.held += 1;
    }

    /// The next room whose turn it is, with what its next event carries: its oldest message,
    /// and when that is a relayed line, the lines of the same speaker right behind it (within
    /// [`MERGE_MAX_LINES`] and [`MERGE_MAX_BYTES`]). The room is busy until
    /// [`RoomQueues::done`].
    fn start_next(&mut self) -> Option<(String, Vec<Outgoing>)> {
        let room = self.ready.pop_front()?;
        let q = self.waiting.get_mut(&room)?;
        let first = q.pop_front()?;
        let mut bytes = merged_size(&first);
        let who = speaker(&first).map(str::to_owned);
        let mut batch = vec![first];
        while let Some(who) = &who
            && batch.len() < MERGE_MAX_LINES
            && let Some(next) = q.front()
            && speaker(next) == Some(who.as_str())
            && bytes + merged_size(next) <= MERGE_MAX_BYTES
        {
            bytes += merged_size(next);
            batch.extend(q.pop_front());
        }
        if q.is_empty() {
            self.waiting.remove(&room);
        }
        self.held -= batch.len();
        self.busy.insert(room.clone());
        Some((room, batch))
    }

    /// `room`'s message is sent (or given up): its next one waits for its turn.
    fn done(&mut self, room: String) {
        self.busy.remove(&room);
        if self.waiting.contains_key(&room) {
            self.ready.push_back(room);
        }
    }
}

/// Who said a relayed line (`name: text`, as the bridge writes it for Matrix); `None` for
/// everything else, which is never merged: the bot's replies, edits, reactions, emotes.
fn speaker(out: &Outgoing) -> Option<&str> {
    if out.kind != SendKind::Relay
        || !matches!(out.op, OutgoingOp::Message)
        || out.text.starts_with("* ")
    {
        return None;
    }
    let (name, _) = out.text.split_once(": ")?;
    (!name.is_empty() && !name.contains('\n')).then_some(name)
}

/// What a line adds to a merged event: its text, its HTML, and a line break for each.
fn merged_size(out: &Outgoing) -> usize {
    out.text.len() + out.html.as_ref().map_or(out.text.len(), String::len) + 6
}

/// One event carrying `batch`'s lines in order, one a line (HTML lines apart by `<br>`),
/// mentioning everyone any of them mentions.
fn merged_content(batch: &[Outgoing]) -> Value {
    let text = batch
        .iter()
        .map(|o| o.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let html = batch
        .iter()
        .map(|o| {
            o.html
                .clone()
                .unwrap_or_else(|| crate::core::format::escape_html(&o.text))
        })
        .collect::<Vec<_>>()
        .join("<br>");
    let mut mentions: Vec<String> = Vec::new();
    for m in batch.iter().flat_map(|o| &o.mentions) {
        if !mentions.contains(m) {
            mentions.push(m.clone());
        }
    }
    let merged = Outgoing::message(&batch[0].room, text)
        .html(Some(html))
        .mentions(mentions)
        .kind(SendKind::Relay);
    serde_json::to_value(message_content(&merged)).expect("event content serializes")
}

/// Whether the homeserver refused the event for its rate limit.
fn is_rate_limit(e: &matrix_sdk::Error) -> bool {
    matches!(e.client_api_error_kind(), Some(ErrorKind::LimitExceeded(_)))
}

/// Whether retrying cannot help: the homeserver refused the event for a reason other than
/// its rate limit or an error it does not name.
fn is_permanent(e: &matrix_sdk::Error) -> bool {
    e.client_api_error_kind()
        .is_some_and(|k| !matches!(k, ErrorKind::LimitExceeded(_) | ErrorKind::Unknown))
}

/// The event content for a message: the bot's own replies are `m.notice` so that other bots
/// do not answer them, and mentions are always explicit (none: never `@room`).
pub fn message_content(out: &Outgoing) -> RoomMessageEventContent {
    content_within(out, MAX_CONTENT_JSON)
}

/// The message's content in at most `max` bytes of JSON.
fn content_within(out: &Outgoing, max: usize) -> RoomMessageEventContent {
    let mut cap = out.text.len() + out.html.as_ref().map_or(0, String::len);
    loop {
        let content = sized_content(out, cap);
        let size = serde_json::to_vec(&content).map_or(usize::MAX, |j| j.len());
        if size <= max || cap == 0 {
            return content;
        }
        cap = cap.min(size) / 2;
    }
}

/// The most a message's content may take as JSON: Matrix refuses events over 65,536 bytes,
/// and the envelope (IDs, signatures, `m.mentions`) needs the rest.
const MAX_CONTENT_JSON: usize = 48 * 1024;

/// The message with at most `cap` bytes of text: without its HTML when both do not fit, cut
/// at a character boundary with a note when the text alone does not.
fn sized_content(out: &Outgoing, cap: usize) -> RoomMessageEventContent {
    let html = out
        .html
        .as_ref()
        .filter(|h| out.text.len() + h.len() <= cap);
    let text = if out.text.len() <= cap {
        std::borrow::Cow::Borrowed(out.text.as_str())
    } else {
        let mut end = cap.min(out.text.len());
        while !out.text.is_char_boundary(end) {
            end -= 1;
        }
        std::borrow::Cow::Owned(format!("{}… (cut: too long for Matrix)", &out.text[..end]))
    };
    let mut content = match (out.kind, html) {
        (SendKind::Reply, None) => RoomMessageEventContent::notice_plain(text),
        (SendKind::Reply, Some(html)) => RoomMessageEventContent::notice_html(text, html),
        (SendKind::Relay, None) => RoomMessageEventContent::text_plain(text),
        (SendKind::Relay, Some(html)) => RoomMessageEventContent::text_html(text, html),
    };
    content.mentions = Some(if out.mentions.is_empty() {
        Mentions::new()
    } else {
        Mentions::with_user_ids(
            out.mentions
                .iter()
                .filter_map(|id| matrix_sdk::ruma::OwnedUserId::try_from(id.as_str()).ok()),
        )
    });
    content
}

/// An `m.replace` edit of the bot's message `of`, with the new text.
pub fn edit_content(out: &Outgoing, of: OwnedEventId) -> Value {
    // An edit carries the text twice (the fallback and `m.new_content`).
    let content = content_within(out, MAX_CONTENT_JSON / 2).make_replacement(
        matrix_sdk::ruma::events::room::message::ReplacementMetadata::new(
            of,
            Some(Mentions::new()),
        ),
    );
    serde_json::to_value(content).expect("event content serializes")
}

/// An `m.reaction` annotation of `to` with `key`.
pub fn reaction_content(to: OwnedEventId, key: &str) -> Value {
    use matrix_sdk::ruma::events::reaction::ReactionEventContent;
    use matrix_sdk::ruma::events::relation::Annotation;
    serde_json::to_value(ReactionEventContent::new(Annotation::new(
        to,
        key.to_owned(),
    )))
    .expect("event content serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Priority;

    fn out_long() -> Outgoing {
        Outgoing::message("!r:e", "edit ".repeat(20_000))
    }

    fn order(q: &mut RoomQueues, slots: usize) -> Vec<Vec<String>> {
        // Rounds of sending: each round starts up to `slots` rooms, then all finish.
        let mut rounds = Vec::new();
        loop {
            let mut round = Vec::new();
            while round.len() < slots
                && let Some((room, batch)) = q.start_next()
            {
                let texts: Vec<String> = batch.into_iter().map(|o| o.text).collect();
                round.push((room, texts.join("+")));
            }
            if round.is_empty() {
                return rounds;
            }
            for (room, _) in &round {
                q.done(room.clone());
            }
            rounds.push(round.into_iter().map(|(_, t)| t).collect());
        }
    }

    #[test]
    fn rooms_take_turns_and_each_keeps_its_order() {
        let mut q = RoomQueues::default();
        for (room, text) in [
            ("a", "a1"),
            ("a", "a2"),
            ("b", "b1"),
            ("a", "a3"),
            ("c", "c1"),
            ("b", "b2"),
        ] {
            q.push(Outgoing::message(room, text));
        }
        assert_eq!(q.held, 6);
        assert_eq!(
            order(&mut q, 2),
            [vec!["a1", "b1"], vec!["c1", "a2"], vec!["b2", "a3"]]
        );
        assert_eq!(q.held, 0);
        assert!(q.waiting.is_empty() && q.busy.is_empty() && q.ready.is_empty());
    }

    #[test]
    fn a_busy_room_sends_nothing_else_until_done_while_others_go_on() {
        let mut q = RoomQueues::default();
        q.push(Outgoing::message("slow", "s1"));
        let (room, out) = q.start_next().unwrap();
        assert_eq!((room.as_str(), out[0].text.as_str()), ("slow", "s1"));
        q.push(Outgoing::message("slow", "s2"));
        q.push(Outgoing::message("fast", "f1"));
        q.push(Outgoing::message("fast", "f2"));
        // "slow" is still sending s1: only "fast" may start, one message at a time.
        let (room, out) = q.start_next().unwrap();
        assert_eq!((room.as_str(), out[0].text.as_str()), ("fast", "f1"));
        assert!(q.start_next().is_none());
        q.done("fast".into());
        assert_eq!(q.start_next().unwrap().1[0].text, "f2");
        q.done("fast".into());
        assert!(q.start_next().is_none());
        q.done("slow".into());
        assert_eq!(q.start_next().unwrap().1[0].text, "s2");
    }

    fn relayed(room: &str, text: &str) -> Outgoing {
        let (name, said) = text.split_once(": ").unwrap_or(("", text));
        Outgoing::message(room, text)
            .html(Some(format!("<b>{name}</b>: {said}")))
            .kind(SendKind::Relay)
    }

    #[test]
    fn lines_of_one_speaker_waiting_for_a_busy_room_go_in_its_next_event() {
        let mut q = RoomQueues::default();
        q.push(relayed("r", "alice: 1"));
        // The room is idle: the first line goes alone, without waiting for company.
        let (_, first) = q.start_next().unwrap();
        assert_eq!(first.len(), 1);
        for text in [
            "alice: 2",
            "alice: 3",
            "bob: 4",
            "bob: 5",
            "* bob waves",
            "bob: 6",
        ] {
            q.push(relayed("r", text));
        }
        q.push(Outgoing::message("r", "alice: a reply of the bot's"));
        q.done("r".into());
        // Each speaker's run is one event, in order; an emote and the bot's reply go alone.
        assert_eq!(
            order(&mut q, 8),
            [
                vec!["alice: 2+alice: 3"],
                vec!["bob: 4+bob: 5"],
                vec!["* bob waves"],
                vec!["bob: 6"],
                vec!["alice: a reply of the bot's"]
            ]
        );
        assert_eq!(q.held, 0);
    }

    #[test]
    fn a_merged_event_stays_within_its_line_and_byte_limits() {
        let mut q = RoomQueues::default();
        for i in 0..100 {
            q.push(relayed("r", &format!("alice: {i}")));
        }
        let sizes: Vec<usize> = std::iter::from_fn(|| {
            let (room, batch) = q.start_next()?;
            q.done(room);
            Some(batch.len())
        })
        .collect();
        assert_eq!(
            sizes,
            [MERGE_MAX_LINES, MERGE_MAX_LINES, MERGE_MAX_LINES, 4]
        );
        let long = format!("alice: {}", "x".repeat(3000));
        for _ in 0..3 {
            q.push(relayed("r", &long));
        }
        // Two lines of 3 kB text + 3 kB HTML are over the byte limit together: one an event.
        let (room, batch) = q.start_next().unwrap();
        assert_eq!(batch.len(), 1);
        q.done(room);
        assert_eq!(q.held, 2);
    }

    #[test]
    fn a_merged_event_has_every_line_in_order_and_every_mention() {
        let batch = vec![
            relayed("r", "alice: one").mentions(vec!["@bob:e".into()]),
            relayed("r", "alice: two <&>").html(None),
            relayed("r", "alice: three").mentions(vec!["@bob:e".into(), "@carol:e".into()]),
        ];
        let json = merged_content(&batch);
        assert_eq!(json["msgtype"], "m.text");
        assert_eq!(json["body"], "alice: one\nalice: two <&>\nalice: three");
        assert_eq!(
            json["formatted_body"],
            "<b>alice</b>: one<br>alice: two &lt;&amp;&gt;<br><b>alice</b>: three"
        );
        assert_eq!(
            json["m.mentions"],
            serde_json::json!({"user_ids": ["@bob:e", "@carol:e"]})
        );
    }

    #[test]
    fn nothing_over_the_event_size_is_attempted() {
        let size = |out: &Outgoing| serde_json::to_vec(&message_content(out)).unwrap().len();
        // 100 kB of text with its HTML: the HTML goes, the text is cut with a note.
        let long = "word ".repeat(20_000);
        let out = Outgoing::message("!r:e", long.clone()).html(Some(format!("<p>{long}</p>")));
        assert!(size(&out) <= MAX_CONTENT_JSON, "{}", size(&out));
        let json = serde_json::to_value(message_content(&out)).unwrap();
        assert!(json.get("formatted_body").is_none());
        let body = json["body"].as_str().unwrap();
        assert!(body.starts_with("word word") && body.ends_with("(cut: too long for Matrix)"));
        // Characters that JSON escapes six times over, and multi-byte ones.
        for nasty in ["\u{1}".repeat(60_000), "ž".repeat(60_000)] {
            let out = Outgoing::message("!r:e", nasty);
            assert!(size(&out) <= MAX_CONTENT_JSON, "{}", size(&out));
        }
        // An edit carries its text twice and still fits.
        let edit = edit_content(&out_long(), "$e:x".try_into().unwrap());
        let edit_size = serde_json::to_vec(&edit).unwrap().len();
        assert!(edit_size <= MAX_CONTENT_JSON + 1024, "{edit_size}");
        // A message that fits is untouched, HTML included.
        let out = Outgoing::message("!r:e", "short").html(Some("<b>short</b>".into()));
        let json = serde_json::to_value(message_content(&out)).unwrap();
        assert_eq!(json["body"], "short");
        assert_eq!(json["formatted_body"], "<b>short</b>");
    }

    #[test]
    fn replies_are_notices_with_empty_mentions() {
        let out = Outgoing::message("!r:e", "pong");
        let json = serde_json::to_value(message_content(&out)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"msgtype": "m.notice", "body": "pong", "m.mentions": {}})
        );
        let out = Outgoing::message("!r:e", "a: b")
            .html(Some("<b>a</b>: b".into()))
            .kind(SendKind::Relay);
        let json = serde_json::to_value(message_content(&out)).unwrap();
        assert_eq!(json["msgtype"], "m.text");
        assert_eq!(json["format"], "org.matrix.custom.html");
        assert_eq!(json["formatted_body"], "<b>a</b>: b");
        assert_eq!(json["m.mentions"], serde_json::json!({}));
    }

    #[test]
    fn pills_mention_their_users_and_nobody_else() {
        let out = Outgoing::message("!r:e", "bob: alice: hi")
            .html(Some(
                "<b>bob</b>: <a href=\"https://matrix.to/#/@alice:e\">alice</a>: hi".into(),
            ))
            .mentions(vec!["@alice:e".into(), "not a user id".into()])
            .kind(SendKind::Relay)
            .priority(Priority::Relay);
        let json = serde_json::to_value(message_content(&out)).unwrap();
        assert_eq!(
            json["m.mentions"],
            serde_json::json!({"user_ids": ["@alice:e"]})
        );
    }
}
