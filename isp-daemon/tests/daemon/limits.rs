//! The server's guards: a client that connects and never sends a request
//! header loses its connection after the header timeout instead of holding
//! it (and its memory) for ever.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use isp_daemon::limits::HEADER_TIMEOUT;

use crate::support::TestDaemon;

#[test]
fn a_silent_connection_is_closed_after_the_header_timeout() {
    let d = TestDaemon::start();
    let addr = d.base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).expect("connect");
    // Half a request line, then silence.
    std::io::Write::write_all(&mut stream, b"GET /api/hea").expect("write");
    stream
        .set_read_timeout(Some(HEADER_TIMEOUT * 3))
        .expect("read timeout");
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    let waited = started.elapsed();
    assert!(
        read.is_ok(),
        "the daemon kept the silent connection open for {waited:?}: {read:?}"
    );
    assert!(
        waited >= HEADER_TIMEOUT - Duration::from_secs(1),
        "closed after {waited:?}, before the header timeout"
    );
    // hyper answers 408 or just closes; either way nothing else.
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );

    // The daemon still serves everyone else.
    d.get("/api/health").expect(200);
}
