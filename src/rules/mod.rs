//! The rule engine's pure core: its SQL ([`sql`]), parsed once and evaluated against an
//! event's columns. Pure: no I/O, no clock, no threads.
//!
//! What exists so far is the statement language; the rules' REST API, their hooks on the
//! shards and their actions are not built yet (the API answers `not_supported`).

pub mod sql;
