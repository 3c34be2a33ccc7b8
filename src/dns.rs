//! R52: reading a domain's TXT records, through `domains.resolver` (one
//! DNS server, UDP then TCP) or the system's resolvers. The lookup is
//! bounded by [`LOOKUP_TIMEOUT`] and never runs inside a store transaction
//! (the service reads the claim, lets its transaction go, looks up, then
//! writes in a new one).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};

/// The longest a whole lookup may take, retries included.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why no answer could be had (as opposed to an answer with no record).
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("the DNS lookup of {name} took longer than {}s", LOOKUP_TIMEOUT.as_secs())]
    Timeout { name: String },
    #[error("the DNS lookup of {name} failed: {detail}")]
    Failed { name: String, detail: String },
}

fn resolver(server: Option<SocketAddr>) -> Result<TokioResolver, String> {
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    // A new resolver per lookup, so no answer is ever cached: a record
    // fixed a minute ago is read as it is now.
    opts.cache_size = 0;
    let builder = match server {
        Some(addr) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            let config = ResolverConfig::from_parts(
                None,
                Vec::new(),
                vec![NameServerConfig::new(addr.ip(), true, vec![udp, tcp])],
            );
            Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        }
        None => Resolver::builder_tokio().map_err(|e| e.to_string())?,
    };
    builder
        .with_options(opts)
        .build()
        .map_err(|e| e.to_string())
}

/// The TXT records of `domain` (each record's strings joined, as RFC 7208
/// reads them); empty when the domain has none or does not exist.
pub async fn txt_records(
    server: Option<SocketAddr>,
    domain: &str,
) -> Result<Vec<String>, DnsError> {
    let name = format!("{domain}.");
    let failed = |detail: String| DnsError::Failed {
        name: domain.to_string(),
        detail,
    };
    let resolver = resolver(server).map_err(failed)?;
    let lookup = match tokio::time::timeout(LOOKUP_TIMEOUT, resolver.txt_lookup(name)).await {
        Err(_) => {
            return Err(DnsError::Timeout {
                name: domain.to_string(),
            });
        }
        Ok(Err(e)) if e.is_no_records_found() || e.is_nx_domain() => return Ok(Vec::new()),
        Ok(Err(e)) => return Err(failed(e.to_string())),
        Ok(Ok(lookup)) => lookup,
    };
    Ok(lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|part| String::from_utf8_lossy(part).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect())
}
