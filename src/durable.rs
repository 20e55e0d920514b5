//! The journal's records and what a restart rebuilds from them: durable sessions
//! (`session::Persist` records, per client) and retained messages.
//!
//! Owns: the on-disk format and recovery. A journal is a sequence of frames,
//! `length: u32 LE, crc32(body): u32 LE, body`; a body is one [`Record`]. Recovery
//! ([`Recovery::feed`]) reads frames in order and stops at the first one that is cut short or
//! fails its checksum (a crash mid-write leaves a torn tail), reporting how many bytes it
//! ignored. Pure: bytes in, state out; the shard's journal task (`broker::journal`) does the
//! I/O. Must never: panic on any input, or apply a record whose checksum fails.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;

use crate::codec::{self, Packet, ProtocolVersion, Publish, QoS, Str, SubOptions};
use crate::session::{Message, Persist, Restored};

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A change to the durable session of `client`.
    Session { client: Str, op: Persist },
    /// The session of `client` ended (expired, discarded, or no longer durable).
    Gone { client: Str },
    /// The retained message of its topic.
    Retain(Message),
    /// The topic's retained message was cleared.
    Unretain { topic: Str },
}

// Body kinds.
const OPEN: u8 = 1;
const SUBSCRIBE: u8 = 2;
const UNSUBSCRIBE: u8 = 3;
const KEEP: u8 = 4;
const SENT: u8 = 5;
const RECEIVED: u8 = 6;
const DONE: u8 = 7;
const AWAIT_REL: u8 = 8;
const RELEASED: u8 = 9;
const GONE: u8 = 10;
const RETAIN: u8 = 11;
const UNRETAIN: u8 = 12;

/// Appends `record` as one frame to `out`. `now` (with `wall`, the same moment as wall-clock
/// time) turns a message's expiry into a wall-clock time that survives the restart.
pub fn encode(record: &Record, now: Instant, wall: SystemTime, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    match record {
        Record::Session { client, op } => {
            let kind = match op {
                Persist::Open { .. } => OPEN,
                Persist::Subscribe { .. } => SUBSCRIBE,
                Persist::Unsubscribe { .. } => UNSUBSCRIBE,
                Persist::Keep { .. } => KEEP,
                Persist::Sent { .. } => SENT,
                Persist::Received { .. } => RECEIVED,
                Persist::Done { .. } => DONE,
                Persist::AwaitRel { .. } => AWAIT_REL,
                Persist::Released { .. } => RELEASED,
            };
            out.push(kind);
            put_str(out, client);
            match op {
                Persist::Open {
                    protocol,
                    expiry_secs,
                } => {
                    out.push(protocol.level());
                    out.extend_from_slice(&expiry_secs.to_le_bytes());
                }
                Persist::Subscribe { filter, opts, id } => {
                    put_str(out, filter);
                    out.push(opts.to_byte());
                    out.extend_from_slice(&id.to_le_bytes());
                }
                Persist::Unsubscribe { filter } => put_str(out, filter),
                Persist::Keep {
                    seq,
                    msg,
                    packet_id,
                } => {
                    out.extend_from_slice(&seq.to_le_bytes());
                    out.extend_from_slice(&packet_id.unwrap_or(0).to_le_bytes());
                    put_message(out, msg, now, wall);
                }
                Persist::Sent { seq, packet_id } => {
                    out.extend_from_slice(&seq.to_le_bytes());
                    out.extend_from_slice(&packet_id.to_le_bytes());
                }
                Persist::Received { seq } | Persist::Done { seq } => {
                    out.extend_from_slice(&seq.to_le_bytes())
                }
                Persist::AwaitRel { packet_id } | Persist::Released { packet_id } => {
                    out.extend_from_slice(&packet_id.to_le_bytes())
                }
            }
        }
        Record::Gone { client } => {
            out.push(GONE);
            put_str(out, client);
        }
        Record::Retain(msg) => {
            out.push(RETAIN);
            put_message(out, msg, now, wall);
        }
        Record::Unretain { topic } => {
            out.push(UNRETAIN);
            put_str(out, topic);
        }
    }
    let body = &out[start + 8..];
    let len = body.len() as u32;
    let crc = crc32fast::hash(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A message: its publisher, its expiry as wall-clock milliseconds (0 = none), and the
/// rest as a 5.0 PUBLISH (topic, payload, QoS, retain, properties) in the codec's format.
fn put_message(out: &mut Vec<u8>, msg: &Message, now: Instant, wall: SystemTime) {
    put_str(out, &msg.publisher);
    let expires_ms = msg.expires_at.map_or(0, |at| {
        let left = at.saturating_duration_since(now);
        (wall + left)
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_millis().max(1) as u64)
    });
    out.extend_from_slice(&expires_ms.to_le_bytes());
    let mut publish = msg.to_publish((msg.qos != QoS::AtMostOnce).then_some(1), false);
    publish.properties.message_expiry_interval = None;
    let mut buf = BytesMut::new();
    // A message the broker accepted always encodes; one that does not is stored empty and
    // fails to decode at recovery, where it is counted as damaged.
    let _ = codec::encode(&Packet::Publish(publish), ProtocolVersion::V5, &mut buf);
    out.extend_from_slice(&(buf.len() as u32).to_le_bytes());
    out.extend_from_slice(&buf);
}

/// Reads the fields of a record body.
struct Body<'a> {
    b: &'a [u8],
}

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<Str> {
        let n = self.u32()? as usize;
        let s = std::str::from_utf8(self.take(n)?).ok()?;
        Some(Str::from(s))
    }
    fn message(&mut self, now: Instant, wall: SystemTime) -> Option<Message> {
        let publisher = self.str()?;
        let expires_ms = self.u64()?;
        let n = self.u32()? as usize;
        let mut buf = BytesMut::from(self.take(n)?);
        let Ok(Some(Packet::Publish(p))) = codec::decode(&mut buf, ProtocolVersion::V5, usize::MAX)
        else {
            return None;
        };
        let p: Publish = p;
        let mut msg = Message::from_publish(p, &publisher, now);
        if expires_ms > 0 {
            let at = UNIX_EPOCH + Duration::from_millis(expires_ms);
            let left = at.duration_since(wall).unwrap_or(Duration::ZERO);
            msg.expires_at = Some(now + left);
        }
        Some(msg)
    }
}

/// Decodes one record body (`None`: not a record this version writes).
fn decode(body: &[u8], now: Instant, wall: SystemTime) -> Option<Record> {
    let mut b = Body { b: body };
    let kind = b.u8()?;
    let record = match kind {
        GONE => Record::Gone { client: b.str()? },
        RETAIN => Record::Retain(b.message(now, wall)?),
        UNRETAIN => Record::Unretain { topic: b.str()? },
        _ => {
            let client = b.str()?;
            let op = match kind {
                OPEN => Persist::Open {
                    protocol: match b.u8()? {
                        3 => ProtocolVersion::V31,
                        4 => ProtocolVersion::V311,
                        5 => ProtocolVersion::V5,
                        _ => return None,
                    },
                    expiry_secs: b.u64()?,
                },
                SUBSCRIBE => Persist::Subscribe {
                    filter: b.str()?,
                    opts: SubOptions::from_byte(b.u8()?)?,
                    id: b.u32()?,
                },
                UNSUBSCRIBE => Persist::Unsubscribe { filter: b.str()? },
                KEEP => {
                    let seq = b.u64()?;
                    let packet_id = b.u16()?;
                    let mut msg = b.message(now, wall)?;
                    msg.seq = seq;
                    Persist::Keep {
                        seq,
                        msg,
                        packet_id: (packet_id != 0).then_some(packet_id),
                    }
                }
                SENT => Persist::Sent {
                    seq: b.u64()?,
                    packet_id: b.u16()?,
                },
                RECEIVED => Persist::Received { seq: b.u64()? },
                DONE => Persist::Done { seq: b.u64()? },
                AWAIT_REL => Persist::AwaitRel {
                    packet_id: b.u16()?,
                },
                RELEASED => Persist::Released {
                    packet_id: b.u16()?,
                },
                _ => return None,
            };
            Record::Session { client, op }
        }
    };
    b.b.is_empty().then_some(record)
}

/// One durable session as the records so far describe it.
#[derive(Debug, Default)]
struct SessionState {
    protocol: Option<ProtocolVersion>,
    expiry_secs: u64,
    subscriptions: BTreeMap<Str, (SubOptions, u32)>,
    /// By sequence number (the order they entered): message, packet id, PUBREC'd.
    messages: BTreeMap<u64, (Message, Option<u16>, bool)>,
    awaiting_rel: Vec<u16>,
}

/// What a restart rebuilds: fed the journal files' bytes, it applies every whole record with
/// a valid checksum and stops at the first that is not.
#[derive(Debug)]
pub struct Recovery {
    now: Instant,
    wall: SystemTime,
    sessions: HashMap<Str, SessionState>,
    retained: HashMap<Str, Message>,
    /// Records applied.
    pub records: u64,
    /// Bytes ignored at the ends of the files fed (torn or damaged tails).
    pub ignored_bytes: u64,
}

impl Recovery {
    /// Nothing recovered yet; `now` and `wall` are the same moment (monotonic and wall-clock),
    /// to bring message expiries back.
    pub fn new(now: Instant, wall: SystemTime) -> Recovery {
        Recovery {
            now,
            wall,
            sessions: HashMap::new(),
            retained: HashMap::new(),
            records: 0,
            ignored_bytes: 0,
        }
    }

    /// Applies the records of one journal file, in order, up to the first frame that is cut
    /// short, fails its checksum or does not decode; returns the bytes ignored from there.
    pub fn feed(&mut self, file: &[u8]) -> u64 {
        let mut at = 0;
        while at < file.len() {
            let Some(header) = file.get(at..at + 8) else {
                break;
            };
            let len = u32::from_le_bytes(header[..4].try_into().unwrap_or_default()) as usize;
            let crc = u32::from_le_bytes(header[4..].try_into().unwrap_or_default());
            let Some(body) = file.get(at + 8..at + 8 + len) else {
                break;
            };
            if crc32fast::hash(body) != crc {
                break;
            }
            let Some(record) = decode(body, self.now, self.wall) else {
                break;
            };
            self.apply(record);
            at += 8 + len;
        }
        let ignored = (file.len() - at) as u64;
        self.ignored_bytes += ignored;
        ignored
    }

    /// Applies one record.
    pub fn apply(&mut self, record: Record) {
        self.records += 1;
        match record {
            Record::Gone { client } => {
                self.sessions.remove(&client);
            }
            Record::Retain(msg) => {
                self.retained.insert(msg.topic.clone(), msg);
            }
            Record::Unretain { topic } => {
                self.retained.remove(&topic);
            }
            Record::Session { client, op } => {
                let s = self.sessions.entry(client).or_default();
                match op {
                    Persist::Open {
                        protocol,
                        expiry_secs,
                    } => {
                        s.protocol = Some(protocol);
                        s.expiry_secs = expiry_secs;
                    }
                    Persist::Subscribe { filter, opts, id } => {
                        s.subscriptions.insert(filter, (opts, id));
                    }
                    Persist::Unsubscribe { filter } => {
                        s.subscriptions.remove(&filter);
                    }
                    Persist::Keep {
                        seq,
                        msg,
                        packet_id,
                    } => {
                        s.messages.insert(seq, (msg, packet_id, false));
                    }
                    Persist::Sent { seq, packet_id } => {
                        if let Some(m) = s.messages.get_mut(&seq) {
                            m.1 = Some(packet_id);
                        }
                    }
                    Persist::Received { seq } => {
                        if let Some(m) = s.messages.get_mut(&seq) {
                            m.2 = true;
                        }
                    }
                    Persist::Done { seq } => {
                        s.messages.remove(&seq);
                    }
                    Persist::AwaitRel { packet_id } => {
                        if !s.awaiting_rel.contains(&packet_id) {
                            s.awaiting_rel.push(packet_id);
                        }
                    }
                    Persist::Released { packet_id } => {
                        s.awaiting_rel.retain(|&p| p != packet_id);
                    }
                }
            }
        }
    }

    /// The durable sessions found (those whose settings were written and say they outlive
    /// their connection), and the retained messages that have not expired.
    pub fn finish(self) -> (Vec<Restored>, Vec<Message>) {
        let now = self.now;
        let mut sessions: Vec<Restored> = self
            .sessions
            .into_iter()
            .filter_map(|(client_id, s)| {
                let protocol = s.protocol?;
                (s.expiry_secs > 0).then(|| Restored {
                    client_id,
                    protocol,
                    expiry_secs: s.expiry_secs,
                    subscriptions: s
                        .subscriptions
                        .into_iter()
                        .map(|(f, (o, id))| (f, o, id))
                        .collect(),
                    messages: s.messages.into_values().collect(),
                    awaiting_rel: s.awaiting_rel,
                })
            })
            .collect();
        sessions.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        let mut retained: Vec<Message> = self
            .retained
            .into_values()
            .filter(|m| !m.expired(now))
            .collect();
        retained.sort_by(|a, b| a.topic.cmp(&b.topic));
        (sessions, retained)
    }
}

/// The records that describe `session` whole (a snapshot: what compaction writes).
pub fn snapshot_of(r: &Restored) -> Vec<Record> {
    let client = r.client_id.clone();
    let mut out = vec![Record::Session {
        client: client.clone(),
        op: Persist::Open {
            protocol: r.protocol,
            expiry_secs: r.expiry_secs,
        },
    }];
    for (filter, opts, id) in &r.subscriptions {
        out.push(Record::Session {
            client: client.clone(),
            op: Persist::Subscribe {
                filter: filter.clone(),
                opts: *opts,
                id: *id,
            },
        });
    }
    for (msg, packet_id, received) in &r.messages {
        out.push(Record::Session {
            client: client.clone(),
            op: Persist::Keep {
                seq: msg.seq,
                msg: msg.clone(),
                packet_id: *packet_id,
            },
        });
        if *received {
            out.push(Record::Session {
                client: client.clone(),
                op: Persist::Received { seq: msg.seq },
            });
        }
    }
    for &packet_id in &r.awaiting_rel {
        out.push(Record::Session {
            client: client.clone(),
            op: Persist::AwaitRel { packet_id },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> (Instant, SystemTime) {
        (Instant::now(), SystemTime::now())
    }

    fn rec(client: &str, op: Persist) -> Record {
        Record::Session {
            client: Str::from(client),
            op,
        }
    }

    fn msg(seq: u64, payload: &str) -> Message {
        let mut m = Message::new("t/1", payload.to_string(), QoS::AtLeastOnce, false);
        m.seq = seq;
        m.publisher = Str::from("p");
        m
    }

    fn journal(records: &[Record]) -> Vec<u8> {
        let (now, wall) = at();
        let mut out = Vec::new();
        for r in records {
            encode(r, now, wall, &mut out);
        }
        out
    }

    fn durable_session() -> Vec<Record> {
        vec![
            rec(
                "c",
                Persist::Open {
                    protocol: ProtocolVersion::V311,
                    expiry_secs: 7200,
                },
            ),
            rec(
                "c",
                Persist::Subscribe {
                    filter: Str::from("t/#"),
                    opts: SubOptions {
                        qos: QoS::ExactlyOnce,
                        ..Default::default()
                    },
                    id: 9,
                },
            ),
            rec(
                "c",
                Persist::Keep {
                    seq: 1,
                    msg: msg(1, "one"),
                    packet_id: Some(5),
                },
            ),
            rec(
                "c",
                Persist::Keep {
                    seq: 2,
                    msg: msg(2, "two"),
                    packet_id: None,
                },
            ),
            rec(
                "c",
                Persist::Keep {
                    seq: 3,
                    msg: msg(3, "three"),
                    packet_id: None,
                },
            ),
            rec(
                "c",
                Persist::Sent {
                    seq: 2,
                    packet_id: 6,
                },
            ),
            rec("c", Persist::Done { seq: 1 }),
            rec("c", Persist::AwaitRel { packet_id: 40 }),
        ]
    }

    #[test]
    fn every_record_comes_back_as_written() {
        let (now, wall) = at();
        let mut records = durable_session();
        records.push(Record::Gone {
            client: Str::from("x"),
        });
        let mut retained = msg(0, "kept");
        retained.retain = true;
        records.push(Record::Retain(retained));
        records.push(Record::Unretain {
            topic: Str::from("t/2"),
        });
        for r in &records {
            let mut out = Vec::new();
            encode(r, now, wall, &mut out);
            assert_eq!(decode(&out[8..], now, wall).as_ref(), Some(r), "{r:?}");
        }
    }

    #[test]
    fn recovery_rebuilds_the_session_in_order_and_forgets_what_was_done() {
        let mut r = Recovery::new(Instant::now(), SystemTime::now());
        assert_eq!(r.feed(&journal(&durable_session())), 0);
        let (sessions, retained) = r.finish();
        assert!(retained.is_empty());
        assert_eq!(sessions.len(), 1);
        let s = &sessions[0];
        assert_eq!((s.expiry_secs, s.awaiting_rel.clone()), (7200, vec![40]));
        assert_eq!(s.subscriptions[0].2, 9);
        let left: Vec<(&[u8], Option<u16>)> = s
            .messages
            .iter()
            .map(|(m, p, _)| (&m.payload[..], *p))
            .collect();
        assert_eq!(left, vec![(&b"two"[..], Some(6)), (&b"three"[..], None)]);
    }

    #[test]
    fn a_torn_or_damaged_tail_is_ignored_and_counted_and_what_precedes_it_kept() {
        let whole = journal(&durable_session());
        // Cut anywhere: no panic, and every whole record before the cut is applied.
        for cut in 0..whole.len() {
            let mut r = Recovery::new(Instant::now(), SystemTime::now());
            let ignored = r.feed(&whole[..cut]);
            assert!(ignored <= cut as u64);
            let _ = r.finish();
        }
        // A flipped byte in the third record: the first two stay, the rest is ignored.
        let mut damaged = whole.clone();
        let first_two = {
            let mut out = Vec::new();
            let (now, wall) = at();
            for rec in &durable_session()[..2] {
                encode(rec, now, wall, &mut out);
            }
            out.len()
        };
        damaged[first_two + 12] ^= 0xff;
        let mut r = Recovery::new(Instant::now(), SystemTime::now());
        assert_eq!(r.feed(&damaged), (whole.len() - first_two) as u64);
        let (sessions, _) = r.finish();
        assert_eq!(sessions[0].subscriptions.len(), 1);
        assert!(sessions[0].messages.is_empty());
    }

    #[test]
    fn ended_sessions_and_cleared_retained_messages_are_not_restored() {
        let mut records = durable_session();
        records.push(Record::Gone {
            client: Str::from("c"),
        });
        let mut kept = msg(0, "r");
        kept.topic = Str::from("t/r");
        records.push(Record::Retain(kept.clone()));
        kept.topic = Str::from("t/gone");
        records.push(Record::Retain(kept));
        records.push(Record::Unretain {
            topic: Str::from("t/gone"),
        });
        let mut r = Recovery::new(Instant::now(), SystemTime::now());
        r.feed(&journal(&records));
        let (sessions, retained) = r.finish();
        assert!(sessions.is_empty());
        assert_eq!(retained.len(), 1);
        assert_eq!(&*retained[0].topic, "t/r");
    }

    #[test]
    fn a_snapshot_replays_to_the_same_session() {
        let mut r = Recovery::new(Instant::now(), SystemTime::now());
        r.feed(&journal(&durable_session()));
        let (sessions, _) = r.finish();
        let mut again = Recovery::new(Instant::now(), SystemTime::now());
        again.feed(&journal(&snapshot_of(&sessions[0])));
        let (replayed, _) = again.finish();
        assert_eq!(format!("{:?}", replayed[0]), format!("{:?}", sessions[0]));
    }
}
