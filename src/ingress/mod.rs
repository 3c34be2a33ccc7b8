//! Ingress: the ways a request enters the daemon besides the HTTP API
//! itself ([`crate::http`]). Today that is NATS JetStream commands
//! ([`nats`]), which are run through the HTTP router, so ingress sits above
//! `http`, and bounces and complaints received over SMTP ([`smtp`], R43 b),
//! handed to the use cases; the composition root ([`crate::app`]) wires it to the actors'
//! handle and the use cases. Nothing below (actors, service, store, domain,
//! mail, events) depends on it or on `http`: see `module_graph` in the tests.

pub mod nats;
pub mod smtp;
