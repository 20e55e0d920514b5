//! Request/reply rendezvous on one executor: a request fanned out to some peers registers
//! here and awaits its replies, which the inbox handler delivers by request id.
//!
//! Owns: the table of outstanding requests of one executor. Single-threaded (`Rc`).
//! Must never: keep a slot after its waiter gave up (dropping the future removes it), or
//! wake a waiter before all expected replies arrived.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

struct Slot<T> {
    expected: usize,
    got: Vec<T>,
    waker: Option<Waker>,
}

/// Outstanding requests of one executor, keyed by a request id unique on that executor.
pub struct Replies<T> {
    next_id: Cell<u64>,
    slots: RefCell<HashMap<u64, Slot<T>>>,
}

impl<T> Default for Replies<T> {
    fn default() -> Self {
        Replies {
            next_id: Cell::new(1),
            slots: RefCell::new(HashMap::new()),
        }
    }
}

impl<T> Replies<T> {
    /// Registers a request expecting `expected` replies; returns its id and the future of
    /// the replies (in arrival order). With `expected == 0` the future is ready at once.
    pub fn register(self: &Rc<Self>, expected: usize) -> (u64, AwaitReplies<T>) {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.slots.borrow_mut().insert(
            id,
            Slot {
                expected,
                got: Vec::with_capacity(expected),
                waker: None,
            },
        );
        (
            id,
            AwaitReplies {
                table: self.clone(),
                id,
            },
        )
    }

    /// Delivers one reply. Replies to unknown ids (the waiter timed out) are dropped.
    pub fn deliver(&self, id: u64, value: T) {
        let mut slots = self.slots.borrow_mut();
        if let Some(slot) = slots.get_mut(&id) {
            slot.got.push(value);
            if slot.got.len() >= slot.expected {
                if let Some(w) = slot.waker.take() {
                    w.wake();
                }
            }
        }
    }

    /// Number of requests waiting for replies.
    pub fn outstanding(&self) -> usize {
        self.slots.borrow().len()
    }
}

/// The replies of one request. Dropping it abandons the request.
pub struct AwaitReplies<T> {
    table: Rc<Replies<T>>,
    id: u64,
}

impl<T> AwaitReplies<T> {
    /// Takes whatever replies arrived so far and abandons the request (after a deadline).
    pub fn take_partial(self) -> Vec<T> {
        self.table
            .slots
            .borrow_mut()
            .get_mut(&self.id)
            .map(|s| std::mem::take(&mut s.got))
            .unwrap_or_default()
    }
}

impl<T> Future for AwaitReplies<T> {
    type Output = Vec<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<T>> {
        let mut slots = self.table.slots.borrow_mut();
        match slots.get_mut(&self.id) {
            Some(slot) if slot.got.len() >= slot.expected => {
                let got = std::mem::take(&mut slot.got);
                slots.remove(&self.id);
                Poll::Ready(got)
            }
            Some(slot) => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            None => Poll::Ready(Vec::new()),
        }
    }
}

impl<T> Drop for AwaitReplies<T> {
    fn drop(&mut self) {
        self.table.slots.borrow_mut().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_after_all_replies_and_forgets_late_ones() {
        glommio::LocalExecutor::default().run(async {
            let table: Rc<Replies<u32>> = Rc::new(Replies::default());
            let (id, fut) = table.register(2);
            table.deliver(id, 1);
            let t2 = table.clone();
            glommio::spawn_local(async move { t2.deliver(id, 2) }).detach();
            assert_eq!(fut.await, vec![1, 2]);
            table.deliver(id, 3);
            assert_eq!(table.outstanding(), 0);
            let (_, none) = table.register(0);
            assert!(none.await.is_empty());
        });
    }

    #[test]
    fn dropping_the_waiter_removes_the_slot() {
        let table: Rc<Replies<u32>> = Rc::new(Replies::default());
        let (_, fut) = table.register(3);
        assert_eq!(table.outstanding(), 1);
        drop(fut);
        assert_eq!(table.outstanding(), 0);
    }
}
