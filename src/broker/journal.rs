//! One shard's journal: the durable sessions' and retained messages' records
//! (`durable::Record`), appended to the shard's own file under `data_dir/journal`, and the
//! recovery that reads every shard's file at start.
//!
//! Owns: the file, the records not yet written, how far the file is written (and synced),
//! and the tasks that write, sync and compact it. Runs on its shard's executor; the
//! recovery ([`recover`]) runs once on the starting thread, before any shard serves.
//! Appending never waits: records go to a buffer that a writer task hands to the kernel
//! through the runtime's io_uring file I/O, a batch per write. Whoever must not acknowledge
//! before the records it caused are written (a publisher's PUBACK, a retained message's)
//! awaits [`Journal::written`] up to [`Journal::end`].
//! Must never: block the shard on the disk, release a waiter before its bytes are written
//! (and synced, with `fsync = "always"`), or drop a record it was given.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use shardmq_shards::rt::{self, BufferedFile, OpenOptions};

use crate::config::{FsyncMode, PersistenceConfig};
use crate::durable::{self, Record, Recovery};
use crate::session::{Message, Restored};

/// The journal directory under `data_dir`.
pub fn dir(data_dir: &str) -> PathBuf {
    Path::new(data_dir).join("journal")
}

fn file_of(dir: &Path, shard: usize) -> PathBuf {
    dir.join(format!("shard-{shard}.log"))
}

/// What a shard starts with.
#[derive(Default)]
pub struct Recovered {
    pub sessions: Vec<Restored>,
    pub retained: Vec<Message>,
}

/// Reads every journal under `data_dir` (whatever shard count wrote them), rebuilds the
/// durable sessions and retained messages, gives each to its home shard among `shards`, and
/// writes each shard's part as a fresh journal (a snapshot: this is also the compaction of
/// a restart). Runs before the shards start, on the calling thread. A torn or damaged tail
/// is skipped with a warning that says how much.
pub fn recover(
    data_dir: &str,
    shards: usize,
    home_of: impl Fn(&str) -> usize,
) -> io::Result<Vec<Recovered>> {
    let dir = dir(data_dir);
    let old = dir.with_extension("old");
    let fresh = dir.with_extension("new");
    // A crash between the two renames below leaves the previous files in `journal.old`.
    let from = if dir.exists() { &dir } else { &old };
    let now = Instant::now();
    let wall = SystemTime::now();
    let mut recovery = Recovery::new(now, wall);
    let started = Instant::now();
    let mut bytes = 0u64;
    if from.exists() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(from)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f)?;
            bytes += data.len() as u64;
            let ignored = recovery.feed(&data);
            if ignored > 0 {
                tracing::warn!(
                    "journal {}: ignored its last {ignored} bytes (torn or damaged: a crash mid-write)",
                    f.display()
                );
            }
        }
    }
    let records = recovery.records;
    let (sessions, retained) = recovery.finish();
    let mut parts: Vec<Recovered> = (0..shards).map(|_| Recovered::default()).collect();
    let (n_sessions, n_retained) = (sessions.len(), retained.len());
    let queued: usize = sessions.iter().map(|s| s.messages.len()).sum();
    for s in sessions {
        parts[home_of(&s.client_id)].sessions.push(s);
    }
    for m in retained {
        parts[home_of(&m.topic)].retained.push(m);
    }
    // The fresh journals: written and synced whole before they replace the old ones.
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir_all(&fresh)?;
    for (shard, part) in parts.iter().enumerate() {
        let mut out = Vec::new();
        for r in snapshot(part.sessions.iter(), part.retained.iter()) {
            durable::encode(&r, now, wall, &mut out);
        }
        let path = file_of(&fresh, shard);
        std::fs::write(&path, &out)?;
        std::fs::File::open(&path)?.sync_all()?;
    }
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(&dir, &old)?;
    }
    std::fs::rename(&fresh, &dir)?;
    std::fs::File::open(Path::new(data_dir))?.sync_all()?;
    let _ = std::fs::remove_dir_all(&old);
    if records > 0 {
        tracing::info!(
            "journal: {n_sessions} persistent sessions ({queued} messages) and {n_retained} retained messages recovered from {records} records ({bytes} bytes) in {:?}",
            started.elapsed()
        );
    }
    Ok(parts)
}

/// The records that describe these sessions and retained messages whole.
pub fn snapshot<'a>(
    sessions: impl Iterator<Item = &'a Restored>,
    retained: impl Iterator<Item = &'a Message>,
) -> Vec<Record> {
    let mut out: Vec<Record> = sessions.flat_map(durable::snapshot_of).collect();
    out.extend(retained.map(|m| Record::Retain(m.clone())));
    out
}

/// One shard's open journal.
pub struct Journal {
    path: PathBuf,
    file: RefCell<Rc<BufferedFile>>,
    /// Records appended and not yet handed to the writer.
    buf: RefCell<Vec<u8>>,
    /// Bytes appended since start (a logical position: compaction does not reset it).
    appended: Cell<u64>,
    /// Appended bytes that are written (and synced, with `fsync = "always"`).
    written: Cell<u64>,
    /// Where the next write goes in the file, and how much of it is synced.
    pos: Cell<u64>,
    synced: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
    writer: RefCell<Option<Waker>>,
    cfg: PersistenceConfig,
    /// Set when the file grew past `compact_bytes` and twice its size after the last
    /// rewrite: the shard's housekeeping rewrites it.
    compact_due: Cell<bool>,
    /// The file's size after the last rewrite (its size at opening before any).
    compacted: Cell<u64>,
    /// A compaction's snapshot, waiting for the writer, and the appended position it covers.
    snapshot: RefCell<Option<(Vec<u8>, u64)>>,
}

impl Journal {
    /// Opens (creates) `shard`'s journal under `data_dir` for appending.
    pub async fn open(
        data_dir: &str,
        shard: usize,
        cfg: &PersistenceConfig,
    ) -> io::Result<Rc<Journal>> {
        let dir = dir(data_dir);
        std::fs::create_dir_all(&dir)?;
        let path = file_of(&dir, shard);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .buffered_open(&path)
            .await
            .map_err(gio)?;
        let size = file.file_size().await.map_err(gio)?;
        let j = Rc::new(Journal {
            path,
            file: RefCell::new(Rc::new(file)),
            buf: RefCell::new(Vec::new()),
            appended: Cell::new(0),
            written: Cell::new(0),
            pos: Cell::new(size),
            synced: Cell::new(size),
            waiters: RefCell::new(Vec::new()),
            writer: RefCell::new(None),
            cfg: cfg.clone(),
            compact_due: Cell::new(false),
            compacted: Cell::new(size),
            snapshot: RefCell::new(None),
        });
        rt::spawn_local(Rc::clone(&j).write_loop()).detach();
        if j.cfg.fsync == FsyncMode::Interval {
            rt::spawn_local(Rc::clone(&j).sync_loop()).detach();
        }
        Ok(j)
    }

    /// Appends `record` (written soon, by the writer task).
    pub fn append(&self, record: &Record) {
        let mut buf = self.buf.borrow_mut();
        let before = buf.len();
        durable::encode(record, Instant::now(), SystemTime::now(), &mut buf);
        self.appended
            .set(self.appended.get() + (buf.len() - before) as u64);
        drop(buf);
        if let Some(w) = self.writer.borrow_mut().take() {
            w.wake();
        }
    }

    /// The position after the last record appended.
    pub fn end(&self) -> u64 {
        self.appended.get()
    }

    /// True while appended records are not yet written.
    pub fn pending(&self) -> bool {
        self.written.get() < self.appended.get()
    }

    /// Waits until everything up to `upto` is written (synced with `fsync = "always"`).
    pub async fn written(&self, upto: u64) {
        poll_fn(|cx| {
            if self.written.get() >= upto {
                Poll::Ready(())
            } else {
                self.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// True once the file grew past `persistence.compact_bytes` (see [`Journal::compact`]).
    pub fn compact_due(&self) -> bool {
        self.compact_due.get() && self.snapshot.borrow().is_none()
    }

    /// Replaces the journal with `records` (the shard's live state now): what was appended
    /// so far is in it, so the buffer is dropped; the writer puts the snapshot in a new file,
    /// syncs it and renames it over the old one before it writes anything appended later.
    pub fn compact(&self, records: Vec<Record>) {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut out = Vec::new();
        for r in &records {
            durable::encode(r, now, wall, &mut out);
        }
        self.buf.borrow_mut().clear();
        *self.snapshot.borrow_mut() = Some((out, self.appended.get()));
        self.compact_due.set(false);
        if let Some(w) = self.writer.borrow_mut().take() {
            w.wake();
        }
    }

    fn release(&self, upto: u64) {
        self.written.set(self.written.get().max(upto));
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    async fn write_loop(self: Rc<Self>) {
        let mut failures = super::warned::Warned::default();
        loop {
            poll_fn(|cx| {
                if self.buf.borrow().is_empty() && self.snapshot.borrow().is_none() {
                    *self.writer.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            let mut upto = self.appended.get();
            let snapshot = self.snapshot.borrow_mut().take();
            let done = match snapshot {
                Some((snapshot, covers)) => {
                    // What was appended after the snapshot waits in the buffer for the next turn.
                    upto = covers;
                    let replaced = self.replace(snapshot.clone()).await;
                    if replaced.is_err() {
                        // Kept for the retry: the records it covers are no longer buffered.
                        *self.snapshot.borrow_mut() = Some((snapshot, covers));
                    }
                    replaced
                }
                None => {
                    let data = std::mem::take(&mut *self.buf.borrow_mut());
                    let n = data.len() as u64;
                    let file = self.file.borrow().clone();
                    match write_all(&file, data.clone(), self.pos.get()).await {
                        Ok(()) => {
                            self.pos.set(self.pos.get() + n);
                            Ok(())
                        }
                        Err(e) => {
                            // Put it back in front of what came since: nothing is dropped.
                            let mut buf = self.buf.borrow_mut();
                            let later = std::mem::replace(&mut *buf, data);
                            buf.extend_from_slice(&later);
                            Err(e)
                        }
                    }
                }
            };
            let synced = match done {
                Ok(()) if self.cfg.fsync == FsyncMode::Always => self.sync().await,
                other => other,
            };
            match synced {
                Ok(()) => {
                    self.release(upto);
                    // Past the threshold, and mostly records the live state no longer needs
                    // (a large live state is not rewritten after every write).
                    let pos = self.pos.get();
                    if pos > self.cfg.compact_bytes && pos > 2 * self.compacted.get() {
                        self.compact_due.set(true);
                    }
                }
                Err(e) => {
                    failures.warn(|more| {
                        tracing::error!(
                            "journal {}: write failed ({e}; {more} more since the last report); acknowledgements wait",
                            self.path.display()
                        )
                    });
                    rt::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Writes `snapshot` to a new file, syncs it and renames it over the journal.
    async fn replace(&self, snapshot: Vec<u8>) -> io::Result<()> {
        let _io = rt::GlommioIo::begin();
        let tmp = self.path.with_extension("compact");
        let n = snapshot.len() as u64;
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .buffered_open(&tmp)
            .await
            .map_err(gio)?;
        write_all(&file, snapshot, 0).await?;
        file.fdatasync().await.map_err(gio)?;
        std::fs::rename(&tmp, &self.path)?;
        *self.file.borrow_mut() = Rc::new(file);
        self.pos.set(n);
        self.synced.set(n);
        self.compacted.set(n);
        Ok(())
    }

    async fn sync(&self) -> io::Result<()> {
        let pos = self.pos.get();
        let file = self.file.borrow().clone();
        let _io = rt::GlommioIo::begin();
        file.fdatasync().await.map_err(gio)?;
        self.synced.set(pos);
        Ok(())
    }

    async fn sync_loop(self: Rc<Self>) {
        let every = Duration::from_millis(self.cfg.fsync_interval_ms.max(1));
        loop {
            rt::sleep(every).await;
            if self.synced.get() < self.pos.get() {
                if let Err(e) = self.sync().await {
                    tracing::warn!("journal {}: sync failed: {e}", self.path.display());
                }
            }
        }
    }
}

async fn write_all(file: &BufferedFile, mut data: Vec<u8>, mut pos: u64) -> io::Result<()> {
    let _io = rt::GlommioIo::begin();
    while !data.is_empty() {
        let n = file.write_at(data.clone(), pos).await.map_err(gio)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "journal write"));
        }
        data.drain(..n);
        pos += n as u64;
    }
    Ok(())
}

/// A runtime error as an `io::Error`.
fn gio(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}
