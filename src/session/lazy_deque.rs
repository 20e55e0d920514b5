//! A queue that costs one pointer while it is empty: the session's queues (the inflight
//! window, the message queue, the QoS 2 ids) are empty for most clients most of the time, and
//! a `VecDeque` costs 32 bytes inline even then.
//!
//! Owns: its elements, in a boxed `VecDeque` that exists from the first push until
//! [`LazyDeque::release_if_empty`] finds it empty. Pure. Must never: free storage that still
//! holds an element.

use std::collections::VecDeque;
use std::ops::{Index, IndexMut};

/// A `VecDeque` that holds no allocation until the first push, and none again once released
/// while empty.
#[derive(Debug, Clone)]
// The box is the point: an empty queue is one null pointer, not a 32-byte `VecDeque`.
#[allow(clippy::box_collection)]
pub struct LazyDeque<T>(Option<Box<VecDeque<T>>>);

impl<T> Default for LazyDeque<T> {
    fn default() -> Self {
        LazyDeque(None)
    }
}

impl<T> LazyDeque<T> {
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |d| d.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push_back(&mut self, value: T) {
        self.0.get_or_insert_with(Default::default).push_back(value);
    }

    pub fn pop_front(&mut self) -> Option<T> {
        self.0.as_mut()?.pop_front()
    }

    pub fn front(&self) -> Option<&T> {
        self.0.as_ref()?.front()
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        self.0.as_ref()?.get(i)
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.0.as_mut()?.get_mut(i)
    }

    pub fn remove(&mut self, i: usize) -> Option<T> {
        self.0.as_mut()?.remove(i)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.0.iter().flat_map(|d| d.iter())
    }

    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut T> {
        self.0.iter_mut().flat_map(|d| d.iter_mut())
    }

    /// Frees the storage when the queue is empty; returns the bytes freed (elements' room
    /// and the box).
    pub fn release_if_empty(&mut self) -> usize {
        match &self.0 {
            Some(d) if d.is_empty() => {
                let freed =
                    d.capacity() * std::mem::size_of::<T>() + std::mem::size_of::<VecDeque<T>>();
                self.0 = None;
                freed
            }
            _ => 0,
        }
    }

    /// Whether storage is held now.
    #[cfg(test)]
    pub fn is_allocated(&self) -> bool {
        self.0.is_some()
    }
}

impl<T> Index<usize> for LazyDeque<T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        self.get(i).expect("LazyDeque index out of range")
    }
}

impl<T> IndexMut<usize> for LazyDeque<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        self.get_mut(i).expect("LazyDeque index out of range")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_nothing_until_the_first_push_and_nothing_once_released_empty() {
        let mut q: LazyDeque<u32> = LazyDeque::default();
        assert!(!q.is_allocated());
        assert_eq!(std::mem::size_of::<LazyDeque<u32>>(), 8);
        q.push_back(1);
        q.push_back(2);
        assert_eq!(q.release_if_empty(), 0, "elements keep their storage");
        assert_eq!((q.len(), q[0], q.front()), (2, 1, Some(&1)));
        assert_eq!(q.pop_front(), Some(1));
        assert_eq!(q.remove(0), Some(2));
        assert!(q.is_empty() && q.is_allocated());
        assert!(q.release_if_empty() > 0);
        assert!(!q.is_allocated());
        assert_eq!(
            (q.pop_front(), q.front(), q.iter().count()),
            (None, None, 0)
        );
    }

    #[test]
    fn iterates_in_order_both_ways() {
        let mut q = LazyDeque::default();
        for i in 0..5 {
            q.push_back(i);
        }
        for v in q.iter_mut() {
            *v *= 10;
        }
        assert_eq!(q.iter().copied().collect::<Vec<_>>(), [0, 10, 20, 30, 40]);
        assert_eq!(q.iter().next_back(), Some(&40));
    }
}
