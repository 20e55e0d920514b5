//! ShardMQ's management HTTP server (EMQ X v3 REST API compatible), minus the broker.
//!
//! Runs on the management thread only (one executor, so nothing here is `Send`-bound). The
//! crate knows nothing of glommio or of the broker: the broker implements [`Collector`], the
//! runtime supplies the socket (futures-lite `AsyncRead + AsyncWrite`) and a timer factory.
//!
//! Pipeline of one request: [`parse::parse_request`] → [`route::route`] → throttle
//! ([`throttle::AuthThrottle::check`]) → auth ([`auth::CredentialStore::authorize`]) →
//! handler ([`server::Handler`]) which turns the route into [`ApiCall`]s and the
//! [`ApiAnswer`]s into a [`response::Response`] → [`server::serve_connection`] writes it.
//!
//! Modules, and what each owns:
//! * [`parse`]: HTTP/1.1 framing and limits (pure).
//! * [`route`] and [`index`]: the route table and `GET /api/v3/` data (pure).
//! * [`auth`]: Basic auth, apps, dashboard users, salted hashes (pure).
//! * [`throttle`]: failed logins per client address, back-off (pure; the broker's MQTT
//!   CONNECT check uses it too).
//! * [`response`]: envelope, error codes, statuses, pagination, wire bytes (pure).
//! * [`render`]: Prometheus text for `GET /metrics` (pure).
//! * [`model`]: serde types of the API, field for field as api-v3.md (pure).
//! * [`admin`]: the administration routes' validation and shapes (pure over the seam).
//! * [`collector`]: the broker seam (trait + call/answer enums).
//! * [`server`]: the connection loop (I/O, runtime-agnostic).

pub mod admin;
pub mod api;
pub mod auth;
pub mod collector;
pub mod index;
pub mod model;
pub mod parse;
pub mod render;
pub mod response;
pub mod route;
pub mod server;
pub mod throttle;

pub use collector::{ApiAnswer, ApiCall, Collector, Coverage, Page, Reply};
pub use parse::{parse_request, HttpError, Limits, Method, Request, Version};
pub use response::{ApiError, ErrorCode, Paging, Response};
pub use route::{route, Route};
pub use server::{serve_connection, ConnEnd, Handler, ServerConfig};
