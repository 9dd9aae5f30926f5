//! brevvakt — enforces Swedish public-sector e-mail rules from mail-server and proxy logs.
//!
//! The data path, as the modules are laid out:
//! [`sources`] (files, stdin) → [`decode`] (formats → [`event::Event`]) →
//! [`pipeline`] (watermark, routing, shard workers) → [`state`] (per-mailbox state,
//! sharded, lock-free) with [`detect`] (one rule per file) → [`sinks`] (alerts, dead letters).
//! Around it: [`calendar`] (required reading days), [`roster`] (who must read what),
//! [`config`], [`alert`], [`cache`] (prefetch hints), [`generate`] (synthetic data) and [`cli`].
//!
//! Only metadata is processed: no message body or subject text exists anywhere in the model.

pub mod alert;
pub mod cache;
pub mod calendar;
pub mod cli;
pub mod config;
pub mod decode;
pub mod detect;
pub mod domains;
pub mod event;
pub mod explain;
pub mod generate;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod roster;
pub mod sinks;
pub mod sources;
pub mod state;
