//! A driver and a session without a socket or a runtime: lines go in, and what the
//! driver would have written, queued and sent to the core comes out.

use std::collections::VecDeque;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Driver;
use super::history::{read_stored, write_stored};
use super::session::{Session, SessionEnd, Wire};
use crate::adapters::Outgoing;
use crate::core::{Event, Priority, SendKind};

/// The lines the driver would have written at once.
#[derive(Default)]
pub(super) struct Sink(Vec<String>);

impl Sink {
    pub(super) fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.0)
    }
}

/// The events the driver would have sent to the core, read like its channel.
#[derive(Default)]
pub(super) struct Events(VecDeque<Event>);

impl Events {
    pub(super) fn try_recv(&mut self) -> Result<Event, ()> {
        self.0.pop_front().ok_or(())
    }
}

pub(super) struct Rig {
    pub(super) driver: Driver,
    pub(super) session: Session,
    pub(super) sink: Sink,
    pub(super) events: Events,
}

/// A rig for network "net", nick "sigbot", channel "#sig", plus `extra` config lines.
pub(super) fn rig(extra: &str) -> Rig {
    let toml = format!(
        "[[irc]]\nname = \"net\"\nserver = \"irc.example.org\"\nnick = \"sigbot\"\nchannels = [\"#sig\"]\n{extra}\n"
    );
    let cfg =
        crate::config::Config::from_str_with_env(&toml, std::path::Path::new("t.toml"), &|_| None)
            .unwrap()
            .irc
            .remove(0);
    let (events_tx, _) = mpsc::channel(1);
    let (_, out_rx) = mpsc::channel(1);
    let driver = Driver::new(cfg, events_tx, out_rx, CancellationToken::new());
    let session = Session::new(driver.cfg.clone(), Instant::now());
    Rig {
        driver,
        session,
        sink: Sink::default(),
        events: Events::default(),
    }
}

impl Rig {
    pub(super) fn feed(&mut self, line: &str) -> Option<SessionEnd> {
        let end = self
            .session
            .handle_line(line, &mut self.driver.seen, Instant::now());
        self.absorb();
        end
    }

    pub(super) fn tick(&mut self) -> Option<SessionEnd> {
        let end = self.session.tick(Instant::now());
        self.absorb();
        end
    }

    fn absorb(&mut self) {
        let (now, events) = self.driver.absorb(&mut self.session);
        for wire in now {
            match wire {
                Wire::Now(l) | Wire::Counted(l) => self.sink.0.push(l),
                Wire::Queued(_) => {}
            }
        }
        self.events.0.extend(events);
    }

    pub(super) fn registered(&mut self, caps: &[&str]) {
        self.session.registered = true;
        self.session.caps = caps.iter().map(|c| (*c).to_owned()).collect();
    }

    /// The principal of the next chat message event.
    pub(super) fn next_principal(&mut self) -> Option<String> {
        loop {
            match self.events.try_recv().expect("an event") {
                Event::Message(m) => return m.sender.principal.map(|p| p.to_string()),
                _ => continue,
            }
        }
    }

    /// The next event that is not a network state report.
    pub(super) fn next_event(&mut self) -> Event {
        loop {
            match self.events.try_recv().expect("an event") {
                Event::NetworkState { .. } => continue,
                ev => return ev,
            }
        }
    }

    pub(super) fn next_presence(&mut self) -> (String, String, crate::core::PresenceChange) {
        match self.next_event() {
            Event::Presence(p) => (p.room.room, p.nick, p.what),
            other => panic!("not presence: {other:?}"),
        }
    }

    pub(super) fn next_text(&mut self) -> String {
        match self.next_event() {
            Event::Message(m) => m.text,
            other => panic!("not a message: {other:?}"),
        }
    }

    /// The lines queued for the token bucket, in the order they would go out.
    pub(super) fn queued(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Ok(l)) = self.driver.queue.pop(Instant::now()) {
            out.push(l.line);
        }
        out
    }

    pub(super) fn relay(&mut self, room: &str, text: &str, kind: SendKind) {
        let out = Outgoing::message(room, text)
            .kind(kind)
            .priority(Priority::Relay);
        self.driver.enqueue(out, Some(&self.session));
    }

    /// What the driver stores once a second, stored now.
    pub(super) fn store_last_seen(&mut self) {
        let store = self.driver.store.clone().expect("a store");
        let rows = self.driver.seen.take_dirty(&self.driver.cfg.name);
        write_stored(&store, rows).unwrap();
    }

    /// What the driver reads when it starts, read now.
    pub(super) fn load_last_seen(&mut self) {
        let store = self.driver.store.clone().expect("a store");
        let channels: Vec<String> = self
            .driver
            .cfg
            .channels
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let loaded = read_stored(&store, &self.driver.cfg.name, &channels);
        self.driver.seen.times.extend(loaded);
    }
}
