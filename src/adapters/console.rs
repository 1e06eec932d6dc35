//! The console network: stdin lines are messages in one room, the bot's words go to stdout.
//! It lets the bot run, and be tried out, with no outside server.

use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{NetworkHandle, Outgoing, OutgoingOp};
use crate::config::ConsoleConfig;
use crate::core::{Event, IncomingMessage, LinkState, MessageKind, Principal, RoomRef, Sender};
use crate::metrics::NetworkMetrics;

/// Who is typing at the console: `$USER`, else `$LOGNAME`, else "operator".
pub fn console_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "operator".to_owned())
}

/// Starts the console's reader and writer.
///
/// `stop_on_eof`: when stdin ends and the console is the only network, the bot has nothing
/// left to do, so the reader cancels `shutdown` (after its last line reached the core).
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    cfg: &ConsoleConfig,
    bot_nick: &str,
    metrics: NetworkMetrics,
    events: mpsc::Sender<Event>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
    stop_on_eof: bool,
) -> NetworkHandle {
    spawn_with_io(
        cfg,
        bot_nick,
        (tokio::io::stdin(), tokio::io::stdout()),
        metrics,
        events,
        tracker,
        shutdown,
        stop_on_eof,
    )
}

#[allow(clippy::too_many_arguments)]
pub fn spawn_with_io(
    cfg: &ConsoleConfig,
    bot_nick: &str,
    (input, output): (
        impl tokio::io::AsyncRead + Unpin + Send + 'static,
        impl AsyncWrite + Unpin + Send + 'static,
    ),
    metrics: NetworkMetrics,
    events: mpsc::Sender<Event>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
    stop_on_eof: bool,
) -> NetworkHandle {
    let (tx, rx) = mpsc::channel::<Outgoing>(256);
    let room = cfg.room_ref();
    let user = console_user();
    tracker.spawn(read_stdin(
        input,
        room.clone(),
        user,
        events,
        shutdown,
        stop_on_eof,
    ));
    tracker.spawn(write_stdout(
        output,
        cfg.name.clone(),
        bot_nick.to_owned(),
        rx,
        metrics,
    ));
    NetworkHandle::new(&cfg.name, tx).with_window(CONSOLE_WINDOW)
}

async fn read_stdin(
    input: impl tokio::io::AsyncRead + Unpin,
    room: RoomRef,
    user: String,
    events: mpsc::Sender<Event>,
    shutdown: CancellationToken,
    stop_on_eof: bool,
) {
    super::report_link(&events, &room.network, LinkState::Connected, 0).await;
    let mut lines = BufReader::new(input).lines();
    loop {
        let line = tokio::select! {
            () = shutdown.cancelled() => return,
            line = lines.next_line() => line,
        };
        match line {
            Ok(Some(line)) => {
                let text = line.trim_end_matches('\r');
                if text.trim().is_empty() {
                    continue;
                }
                let msg = IncomingMessage {
                    room: room.clone(),
                    sender: Sender {
                        nick: user.clone(),
                        principal: Some(Principal::new(&room.network, &user)),
                        mask: None,
                    },
                    kind: MessageKind::Text,
                    text: text.to_owned(),
                    id: None,
                    sent_at: Some(chrono::Utc::now()),
                };
                if events.send(Event::Message(msg)).await.is_err() {
                    return;
                }
            }
            Ok(None) => {
                tracing::info!(network = %room.network, "console input ended");
                break;
            }
            Err(e) => {
                tracing::warn!(network = %room.network, error = %e, "console input unreadable; console input stops");
                break;
            }
        }
    }
    if stop_on_eof {
        shutdown.cancel();
    }
}

/// How many outbox messages the console takes before their verdicts: a batch is written
/// with one write and one flush.
pub const CONSOLE_WINDOW: usize = 32;

/// At most this many messages are written with one write.
const WRITE_BATCH: usize = 256;

async fn write_stdout(
    mut output: impl AsyncWrite + Unpin,
    network: String,
    bot_nick: String,
    mut rx: mpsc::Receiver<Outgoing>,
    metrics: NetworkMetrics,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    // Runs until every sender is gone, so that nothing queued before shutdown is lost.
    // Whatever waits in the queue is written at once, and only then are receipts given.
    while rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        let mut buf = String::new();
        for out in &batch {
            render(&mut buf, &network, &bot_nick, out);
        }
        if output.write_all(buf.as_bytes()).await.is_err() || output.flush().await.is_err() {
            tracing::warn!(%network, "console output closed");
            return;
        }
        for out in batch.drain(..) {
            if matches!(out.op, OutgoingOp::Message | OutgoingOp::Tagged(_)) {
                metrics.sent();
            }
            out.receipt.sent();
        }
    }
}

/// One message as the console shows it, added to `buf`.
fn render(buf: &mut String, network: &str, bot_nick: &str, out: &Outgoing) {
    use std::fmt::Write as _;
    match &out.op {
        OutgoingOp::Message | OutgoingOp::Tagged(_) => {
            for line in out.text.lines() {
                let _ = writeln!(buf, "[{network}/{}] <{bot_nick}> {line}", out.room);
            }
        }
        // Like IRC, a terminal cannot change what it printed, and repeating the line
        // would only be noise.
        OutgoingOp::Edit(_) => {}
        OutgoingOp::React { key, .. } => {
            let _ = writeln!(buf, "[{network}/{}] * {bot_nick} reacts {key}", out.room);
        }
    }
}
