//! Test helpers shared by the integration tests. Each test binary uses only
//! part of them.
#![allow(dead_code)]

pub mod browser;
pub mod daemon;
pub mod db;
pub mod dns;
pub mod outbox;
pub mod process;
pub mod reports;
pub mod scenario;
pub mod smtp_sink;
pub mod statements;
pub mod tcp_proxy;
pub mod wait;
