//! # authflow-store
//!
//! What authflow keeps, behind async traits, with three backends:
//!
//! | backend | feature | for |
//! |---|---|---|
//! | [`MemoryStore`] | always | tests and single-process development |
//! | `SqliteStore` | `sqlite` (default) | one machine: an embedded file in WAL mode, the default of `authflow serve` |
//! | `PostgresStore` | `postgres` (default) | many replicas sharing one database |
//!
//! Secrets are never stored: only [`authflow_core::TokenHash`]es. Operations that must be atomic (consuming a
//! code, rotating a refresh token, one-time `jti`s, device-grant updates) are atomic in every backend, and the
//! shared behavioural suite (feature `test-suite`, module `testsuite`) proves it under concurrency. Run that
//! suite against your own backend to check it.
//!
//! The SQL backends share their statements; PostgreSQL runs them through sqlx, SQLite through rusqlite, inline
//! on the calling thread (a SQLite point read costs less than a hop to another thread).
//!
//! [`open`] picks a backend from a URL: `memory:`, `sqlite://path.db` or `postgres://…`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "postgres")]
mod batch;
mod error;
#[cfg(feature = "test-suite")]
pub mod fixtures;
#[cfg(feature = "postgres")]
mod lease;
pub mod memory;
pub mod model;
mod open;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "test-suite")]
pub mod testsuite;
mod traits;

pub use error::StoreError;
pub use memory::MemoryStore;
pub use model::*;
pub use open::{open, OpenOptions};
pub use traits::*;
