//! Typed questions for the shards. A [`ShardQuery`] is one thing a shard can be asked (its
//! counters, a page of its clients, an action on one of its clients) together with the type
//! of its answer; the queries themselves live in `views`. [`question`] packs one for
//! `ShardMsg::Collect`, the shard answers it on its own thread with [`ShardQuery::answer`],
//! and [`answers`] turns the `ReplyData::Answer`s that come back into `Q::Reply`s. So a new
//! question is one type and one `impl`, and no answer is matched by hand.
//!
//! Runs on both sides: [`question`] and [`answers`] on the asking executor (the management
//! thread, or a shard summing the node's counters), the packed closure on the asked shard.
//! Must never: carry anything tied to one executor in a query or a reply (both are `Send`).

use std::rc::Rc;

use super::msg::{Question, ReplyData};
use super::shard::Shard;

/// A question one shard answers about itself, and the type of that answer.
pub trait ShardQuery: Send + 'static {
    type Reply: Send + 'static;
    /// The asked shard's answer (runs on that shard's thread).
    fn answer(self, shard: &Rc<Shard>) -> Self::Reply;
}

/// `query` packed for the trip to a shard.
pub fn question<Q: ShardQuery>(query: Q) -> Question {
    Question::new(move |shard| match shard.downcast_ref::<Rc<Shard>>() {
        Some(shard) => Box::new(query.answer(shard)),
        // Only shards answer questions; anything else answers nothing a query accepts.
        None => Box::new(()),
    })
}

/// The answers of type `Q::Reply` among `replies` (one per shard that answered in time).
pub fn answers<Q: ShardQuery>(replies: Vec<ReplyData>) -> Vec<Q::Reply> {
    replies
        .into_iter()
        .filter_map(|r| match r {
            ReplyData::Answer(any) => any.downcast::<Q::Reply>().ok().map(|b| *b),
            _ => None,
        })
        .collect()
}

/// A page of rows from one shard: the first `window` rows of its part, in order, and how
/// many rows its part holds in all.
pub struct Rows<T> {
    pub rows: Vec<T>,
    pub count: u64,
}

impl<T> Rows<T> {
    /// Every shard's rows in one list (not yet in order) and the total count.
    pub fn merge(parts: Vec<Rows<T>>) -> Rows<T> {
        let mut all = Rows {
            rows: Vec::new(),
            count: 0,
        };
        for part in parts {
            all.rows.extend(part.rows);
            all.count += part.count;
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_rows_keep_every_row_and_add_up_the_counts() {
        let parts = vec![
            Rows {
                rows: vec![1, 4],
                count: 9,
            },
            Rows {
                rows: vec![],
                count: 0,
            },
            Rows {
                rows: vec![2],
                count: 1,
            },
        ];
        let all = Rows::merge(parts);
        assert_eq!((all.rows, all.count), (vec![1, 4, 2], 10));
    }

    #[test]
    fn answers_of_another_type_are_not_taken_for_this_querys() {
        struct Count;
        impl ShardQuery for Count {
            type Reply = u64;
            fn answer(self, _: &Rc<Shard>) -> u64 {
                0
            }
        }
        let replies = vec![
            ReplyData::Answer(Box::new(7u64)),
            ReplyData::Answer(Box::new("seven")),
            ReplyData::Ack,
            ReplyData::Answer(Box::new(8u64)),
        ];
        assert_eq!(answers::<Count>(replies), vec![7, 8]);
        // A question answered by something other than a shard yields no answer.
        let not_a_shard = question(Count).answer(&42u32);
        assert!(not_a_shard.downcast::<u64>().is_err());
    }
}
