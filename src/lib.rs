//! `invited`: a daemon that owns member invitations, partner requests, the emails
//! they cause and the access an accepted invitation grants.
//!
//! See ARCHITECTURE.md for the map of this crate.

pub mod actors;
pub mod app;
pub mod config;
pub mod dns;
pub mod domain;
pub mod events;
pub mod feedback;
pub mod http;
pub mod ingress;
pub mod mail;
pub mod metrics;
pub mod service;
pub mod store;
pub mod telemetry;

#[cfg(test)]
mod module_graph;
