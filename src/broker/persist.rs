//! The shard's side of durability: what of its sessions and retained messages goes to its
//! journal, what a restart gives back to it, and what an acknowledgement waits for.
//!
//! Owns: the rules that tie acknowledgements to the journal. A publisher's PUBACK/PUBREC
//! leaves only once the records its message caused are written: on its own shard (the
//! connection awaits [`Shard::durability_wait`] before writing its output) and on every shard
//! its QoS 1/2 messages went to that keeps durable sessions (those forwards ask for a
//! confirmation, sent once that shard's journal holds them: `Shard::confirm_when_written`).
//! Runs on the shard's thread. Must never: acknowledge before the records are written, or
//! make clean sessions and QoS 0 traffic wait (they cause no records and ask nothing).

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::journal::{self, Recovered};
use super::msg::{Forward, ReplyData, ShardMsg};
use super::race::or_timeout;
use super::shard::{Client, Shard, ROUTE_ACK_DEADLINE};
use crate::codec::{QoS, Str};
use crate::durable::Record;
use crate::retained::Stored;
use crate::session::{Message, Restored, Session};

impl Shard {
    /// Writes down what `c`'s session recorded (a durable session only).
    pub(super) fn journal_session(&self, client_id: &Str, c: &mut Client) {
        if !c.session.has_persist() {
            return;
        }
        let ops = c.session.take_persist();
        if let Some(j) = self.journal.get() {
            for op in ops {
                j.append(&Record::Session {
                    client: client_id.clone(),
                    op,
                });
            }
            if !c.journaled {
                c.journaled = true;
                self.durable_shards[self.id].store(true, Ordering::Release);
            }
        }
    }

    /// The session of `client_id` ended: its records no longer count.
    pub(super) fn journal_gone(&self, client_id: &Str, c: &Client) {
        if let (true, Some(j)) = (c.journaled, self.journal.get()) {
            j.append(&Record::Gone {
                client: client_id.clone(),
            });
        }
    }

    /// Writes down a retained message's change (on its topic's owner shard).
    pub(super) fn journal_retained(&self, stored: Stored, msg: &Message) {
        let Some(j) = self.journal.get() else {
            return;
        };
        match stored {
            Stored::Kept => {
                let mut kept = msg.clone();
                kept.retain = true;
                j.append(&Record::Retain(kept));
            }
            Stored::Cleared => j.append(&Record::Unretain {
                topic: msg.topic.clone(),
            }),
            Stored::Refused => {}
        }
    }

    /// Whether forwards to shard `to` must be confirmed before their publishers are
    /// acknowledged: they carry QoS 1/2 messages and `to` keeps durable sessions.
    pub(super) fn must_confirm(&self, to: usize, forwards: &[Forward]) -> bool {
        self.journal.get().is_some()
            && self.durable_shards[to].load(Ordering::Acquire)
            && forwards.iter().any(|f| f.msg.qos != QoS::AtMostOnce)
    }

    /// Answers `req` from `to` once what this shard journaled so far is written.
    pub(super) fn confirm_when_written(&self, to: usize, req: u64) {
        let ack = ShardMsg::Reply {
            req,
            reply: Box::new(ReplyData::Ack),
        };
        match self.journal.get() {
            Some(j) if j.pending() => {
                let (j, mesh, upto) = (j.clone(), self.mesh.clone(), j.end());
                shardmq_shards::rt::spawn_local(async move {
                    j.written(upto).await;
                    mesh.send(to, ack);
                })
                .detach();
            }
            _ => self.mesh.send(to, ack),
        }
    }

    /// What a connection must wait for before it writes the acknowledgements its last batch
    /// produced: this shard's journal up to now, and the confirmations its forwards asked
    /// for (each at most `ROUTE_ACK_DEADLINE`). `None` when there is nothing to wait for.
    pub fn durability_wait(&self) -> Option<Pin<Box<dyn Future<Output = ()>>>> {
        let j = self.journal.get()?;
        let confirms = std::mem::take(&mut *self.batch_confirms.borrow_mut());
        if !j.pending() && confirms.is_empty() {
            return None;
        }
        let (j, upto) = (j.clone(), j.end());
        Some(Box::pin(async move {
            j.written(upto).await;
            for confirmed in confirms {
                let _ = or_timeout(confirmed, ROUTE_ACK_DEADLINE).await;
            }
        }))
    }

    /// Takes back what a restart recovered for this shard: its durable sessions (offline,
    /// their subscriptions in the indexes and announced to the other shards) and the
    /// retained messages whose topics it owns.
    pub fn restore(self: &Rc<Self>, part: Recovered) {
        let now = Instant::now();
        let cfg = self.policy.borrow().session.clone();
        for r in part.sessions {
            let client_id = r.client_id.clone();
            let protocol = r.protocol;
            let filters: Vec<_> = r
                .subscriptions
                .iter()
                .map(|(f, o, _)| (f.clone(), Ok(*o)))
                .collect();
            let client = Client {
                session: Session::restore(r, cfg.clone(), now),
                link: None,
                username: None,
                peer: None,
                connected_at_ms: super::shard::unix_millis(),
                keep_alive: 0,
                protocol,
                backlog: None,
                progress: super::flow::Progress::new(now),
                journaled: true,
            };
            self.clients.borrow_mut().insert(Box::new(client));
            self.subscribe_silently(&client_id, filters);
        }
        if self.clients.borrow().values().any(|c| c.journaled) {
            self.durable_shards[self.id].store(true, Ordering::Release);
        }
        let limits = self.policy.borrow().retainer_limits;
        let mut store = self.retained.borrow_mut();
        for m in part.retained {
            store.store(m, limits, self.shards, now);
        }
    }

    /// Rewrites the journal from the live state once it grew past `compact_bytes`.
    pub(super) fn compact_journal(&self) {
        let Some(j) = self.journal.get() else {
            return;
        };
        if !j.compact_due() {
            return;
        }
        let clients = self.clients.borrow();
        let sessions: Vec<Restored> = clients
            .iter()
            .filter(|(_, c)| c.journaled && c.session.is_persistent())
            .map(|(id, c)| c.session.written_down(id))
            .collect();
        let retained = self.retained.borrow().all();
        j.compact(journal::snapshot(sessions.iter(), retained.iter()));
    }
}
