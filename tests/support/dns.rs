//! A DNS server on 127.0.0.1 for the tests of verified domains (R52): it
//! answers TXT queries over UDP from records the test sets and changes at
//! will (NXDOMAIN for a name it has none for), built on the DNS wire format
//! of hickory's `proto` (the daemon's resolver talks to it like to any
//! server). One thread, blocking; it stops with the test process.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::TXT;
use hickory_resolver::proto::rr::{RData, Record, RecordType};

type Records = Arc<Mutex<HashMap<String, Vec<String>>>>;

pub struct DnsServer {
    addr: SocketAddr,
    records: Records,
    queries: Arc<Mutex<Vec<String>>>,
}

impl DnsServer {
    pub fn start() -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a UDP port on loopback");
        let addr = socket.local_addr().unwrap();
        let records: Records = Arc::default();
        let queries: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r, q) = (records.clone(), queries.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    return;
                };
                let Ok(request) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let response = answer(&request, &r, &q);
                if let Ok(bytes) = response.to_vec() {
                    let _ = socket.send_to(&bytes, peer);
                }
            }
        });
        DnsServer {
            addr,
            records,
            queries,
        }
    }

    /// A server that reads every query and never answers (a DNS server
    /// gone dark): for the lookup's timeout.
    pub fn silent() -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a UDP port on loopback");
        let addr = socket.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while socket.recv_from(&mut buf).is_ok() {}
        });
        addr
    }

    /// `ip:port`, for `domains.resolver`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the TXT records of `name` (each one string).
    pub fn set_txt(&self, name: &str, values: &[&str]) {
        self.records.lock().unwrap().insert(
            name.to_ascii_lowercase(),
            values.iter().map(|v| v.to_string()).collect(),
        );
    }

    /// The names asked for so far (TXT or not), lower case, no final dot.
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().unwrap().clone()
    }
}

fn answer(request: &Message, records: &Records, queries: &Arc<Mutex<Vec<String>>>) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.message_type = MessageType::Response;
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    let Some(query) = request.queries.first() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response;
    };
    response.add_query(query.clone());
    let name = query.name().to_ascii().to_ascii_lowercase();
    let name = name.trim_end_matches('.').to_string();
    queries.lock().unwrap().push(name.clone());
    match records.lock().unwrap().get(&name) {
        None => response.metadata.response_code = ResponseCode::NXDomain,
        Some(values) if query.query_type() == RecordType::TXT => {
            for value in values {
                response.add_answer(Record::from_rdata(
                    query.name().clone(),
                    60,
                    RData::TXT(TXT::new(vec![value.clone()])),
                ));
            }
        }
        Some(_) => {}
    }
    response
}
