//! A home shard's directory of its clients that are served by other shards.
//!
//! With `shards.clean_sessions = "accepting"`, a clean start whose session ends with its
//! connection (3.x clean session, 5.0 Clean Start 1 with expiry 0) is served by the shard that accepted the socket, not handed
//! to the client id's home shard. The home
//! shard still answers for the id: the serving shard posts a `Claim` (and a `Release` when
//! the connection ends), and the home shard keeps here which shard serves which connection
//! of the id, so that a newer connection of the id, wherever it is accepted, ends the older
//! one (takeover) and the API finds the client.
//!
//! Owns: the map from a client id to (shard, connection) for ids homed on this shard and
//! served elsewhere. An entry is 16 bytes: the id's 64-bit hash under this shard's random
//! keys (a client cannot choose colliding ids) and the shard and connection packed in one
//! word. Two ids with the same hash would share an entry: a takeover between them would end
//! nothing (the displaced shard checks the real id) and the older one's entry would be lost.
//! Runs on the home shard's thread; pure. Must never: hold anything but ids' hashes, or
//! keep an entry for a connection served on the home shard itself.

use crate::fastmap::FastMap;
use std::hash::BuildHasher;

/// Connection numbers are per shard and below 2^48; the shard takes the top 16 bits.
const LINK_BITS: u32 = 48;

/// Which shard serves which connection of the ids homed here and served elsewhere.
#[derive(Default)]
pub struct Directory {
    entries: FastMap<u64, u64>,
    keys: ahash::RandomState,
}

/// Where one connection of a client is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    pub shard: usize,
    pub link: u64,
}

impl Served {
    fn pack(self) -> u64 {
        ((self.shard as u64) << LINK_BITS) | (self.link & ((1 << LINK_BITS) - 1))
    }

    fn unpack(word: u64) -> Served {
        Served {
            shard: (word >> LINK_BITS) as usize,
            link: word & ((1 << LINK_BITS) - 1),
        }
    }
}

impl Directory {
    fn key(&self, client_id: &str) -> u64 {
        self.keys.hash_one(client_id)
    }

    /// `at` now serves `client_id`. Returns the connection it replaces when that one is
    /// served by another shard (which must end it); a shard replaces its own older
    /// connections itself.
    pub fn claim(&mut self, client_id: &str, at: Served) -> Option<Served> {
        let key = self.key(client_id);
        let old = self.entries.insert(key, at.pack()).map(Served::unpack);
        old.filter(|o| o.shard != at.shard)
    }

    /// Connection `at` of `client_id` ended: forget it, unless a newer one was claimed.
    pub fn release(&mut self, client_id: &str, at: Served) {
        let key = self.key(client_id);
        if self.entries.get(&key) == Some(&at.pack()) {
            self.entries.remove(&key);
        }
    }

    /// The home shard serves `client_id` itself from now on: the connection served
    /// elsewhere, if any, which must end.
    pub fn take(&mut self, client_id: &str) -> Option<Served> {
        let key = self.key(client_id);
        self.entries.remove(&key).map(Served::unpack)
    }

    /// Which shard serves `client_id`, if another one does.
    pub fn locate(&self, client_id: &str) -> Option<usize> {
        self.entries
            .get(&self.key(client_id))
            .map(|w| Served::unpack(*w).shard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(shard: usize, link: u64) -> Served {
        Served { shard, link }
    }

    #[test]
    fn a_claim_from_another_shard_displaces_the_older_connection() {
        let mut d = Directory::default();
        assert_eq!(d.claim("a", at(1, 7)), None);
        assert_eq!(d.locate("a"), Some(1));
        assert_eq!(d.claim("a", at(2, 3)), Some(at(1, 7)));
        assert_eq!(d.locate("a"), Some(2));
        assert_eq!(d.entries.len(), 1);
    }

    #[test]
    fn a_shard_replaces_its_own_older_connection_itself() {
        let mut d = Directory::default();
        d.claim("a", at(1, 7));
        assert_eq!(d.claim("a", at(1, 8)), None);
        assert_eq!(d.locate("a"), Some(1));
    }

    #[test]
    fn a_release_forgets_only_the_connection_it_names() {
        let mut d = Directory::default();
        d.claim("a", at(1, 7));
        d.claim("a", at(2, 3));
        d.release("a", at(1, 7)); // the older one's end arrives late
        assert_eq!(d.locate("a"), Some(2));
        d.release("a", at(2, 3));
        assert_eq!(d.locate("a"), None);
        assert!(d.entries.is_empty());
    }

    #[test]
    fn the_home_shard_takes_an_id_over_and_gets_the_connection_to_end() {
        let mut d = Directory::default();
        d.claim("a", at(3, 9));
        assert_eq!(d.take("a"), Some(at(3, 9)));
        assert_eq!(d.take("a"), None);
        assert_eq!(d.locate("a"), None);
    }

    #[test]
    fn shard_and_connection_survive_packing() {
        let big = at(65_535, (1 << LINK_BITS) - 1);
        assert_eq!(Served::unpack(big.pack()), big);
        let mut d = Directory::default();
        d.claim("x", big);
        assert_eq!(d.take("x"), Some(big));
    }
}
