//! The shard's client table: every session the shard owns, found by client id.
//!
//! Owns: the table's storage. Each entry is the boxed client record alone (the shard's
//! `Client`), found by the id its session already holds: a map keyed by a copy of the id cost every connection the copy
//! (32 B) and the map's slack for it (about 50 B per idle connection in all).
//! Runs on the shard's thread. Must never: hold two entries with one id (`insert` replaces),
//! or be iterated where the order is observable (it is the hash table's).

use std::hash::BuildHasher;

use hashbrown::hash_table::{Entry, HashTable};

use crate::codec::Str;

/// A record that carries its own key.
pub trait Keyed {
    fn key(&self) -> &Str;
}

/// Client id → client record, keyed by the record's [`Keyed::key`].
pub struct ClientTable<Client> {
    table: HashTable<Box<Client>>,
    hasher: ahash::RandomState,
}

impl<Client> Default for ClientTable<Client> {
    fn default() -> Self {
        ClientTable {
            table: HashTable::new(),
            hasher: ahash::RandomState::new(),
        }
    }
}

fn id_of<Client: Keyed>(c: &Client) -> &str {
    c.key().as_str()
}

impl<Client: Keyed> ClientTable<Client> {
    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    pub fn get(&self, id: &str) -> Option<&Client> {
        self.table
            .find(self.hash(id), |c| id_of(&**c) == id)
            .map(|c| &**c)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Client> {
        let hash = self.hash(id);
        self.table
            .find_mut(hash, |c| id_of(&**c) == id)
            .map(|c| &mut **c)
    }

    /// Adds `client` under its session's id; returns the client it replaced, if any.
    pub fn insert(&mut self, client: Box<Client>) -> Option<Box<Client>> {
        let hasher = &self.hasher;
        let hash = hasher.hash_one(id_of(&*client));
        match self.table.entry(
            hash,
            |c| id_of(&**c) == id_of(&*client),
            |c| hasher.hash_one(id_of(&**c)),
        ) {
            Entry::Occupied(mut e) => Some(std::mem::replace(e.get_mut(), client)),
            Entry::Vacant(e) => {
                e.insert(client);
                None
            }
        }
    }

    pub fn remove(&mut self, id: &str) -> Option<Box<Client>> {
        let hash = self.hash(id);
        match self.table.find_entry(hash, |c| id_of(&**c) == id) {
            Ok(e) => Some(e.remove().0),
            Err(_) => None,
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn values(&self) -> impl Iterator<Item = &Client> {
        self.table.iter().map(|c| &**c)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Client> {
        self.table.iter_mut().map(|c| &mut **c)
    }

    /// (client id, client) pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&Str, &Client)> {
        self.table.iter().map(|c| (c.key(), &**c))
    }
}
