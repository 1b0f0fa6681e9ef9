//! The storage suite: every scenario on SQLite, and on PostgreSQL and MariaDB/MySQL when their
//! URLs are given (see `support`).

#![allow(clippy::unwrap_used)]

mod cache;
mod import;
mod messages;
mod peers;
mod registrations;
mod revocations;
mod setup;
mod sqlite_files;
mod stats;
mod support;
