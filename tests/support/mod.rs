//! Test helpers shared by the integration tests. Each test binary uses only
//! part of them.
#![allow(dead_code)]

pub mod daemon;
pub mod smtp_sink;
