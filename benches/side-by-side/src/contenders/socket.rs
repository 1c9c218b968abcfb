//! The RPC floor: request and reply over a Unix socket to a second process
//! (this binary, started with `--serve-socket`), the transport go-plugin
//! uses, with a five-byte header instead of gRPC. Any real RPC framing only
//! adds to this.
//!
//! Wire form: request `op: u8, len: u32 LE, payload`; reply `u64 LE`.
//! Ops: 1 = add one to the 8-byte payload, 2 = sum the payload's bytes.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::Contender;

const OP_ADD_ONE: u8 = 1;
const OP_SUM: u8 = 2;

/// The client end and the server process.
pub(crate) struct Socket {
    stream: UnixStream,
    request: Vec<u8>,
    server: Child,
    _dir: tempfile::TempDir,
}

impl Socket {
    /// Starts the server process and connects to it.
    pub(crate) fn start() -> Result<Self> {
        let dir = tempfile::tempdir().context("creating the socket directory")?;
        let path = dir.path().join("rpc.sock");
        let listener =
            UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
        let exe = std::env::current_exe().context("finding this benchmark's executable")?;
        let mut server = Command::new(exe)
            .arg("--serve-socket")
            .arg(&path)
            .stdin(Stdio::null())
            .spawn()
            .context("starting the socket server process")?;
        // The server connects to us; accept it unless it died first.
        listener.set_nonblocking(true)?;
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if let Some(status) = server.try_wait()? {
                        bail!("the socket server process exited before connecting ({status})");
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => {
                    let _ = server.kill();
                    return Err(e).context("accepting the socket server's connection");
                }
            }
        };
        stream.set_nonblocking(false)?;
        // A server that stops answering fails the run instead of hanging it.
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Self {
            stream,
            request: Vec::with_capacity(4096),
            server,
            _dir: dir,
        })
    }

    fn call(&mut self, op: u8, payload: &[u8]) -> Result<u64> {
        let len = u32::try_from(payload.len()).context("payload larger than 4 GiB")?;
        self.request.clear();
        self.request.push(op);
        self.request.extend_from_slice(&len.to_le_bytes());
        self.request.extend_from_slice(payload);
        self.stream.write_all(&self.request)?;
        let mut reply = [0u8; 8];
        self.stream
            .read_exact(&mut reply)
            .context("reading the socket server's reply")?;
        Ok(u64::from_le_bytes(reply))
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // End of stream tells the server to exit.
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if !matches!(self.server.wait(), Ok(s) if s.success()) {
            let _ = self.server.kill();
        }
    }
}

impl Contender for Socket {
    #[inline]
    fn add_one(&mut self, x: u64) -> Result<u64> {
        self.call(OP_ADD_ONE, &x.to_le_bytes())
    }

    #[inline]
    fn sum(&mut self, payload: &[u8]) -> Result<u64> {
        self.call(OP_SUM, payload)
    }
}

/// The server process: answers requests until the client closes the socket.
pub(crate) fn serve(path: &Path) -> Result<()> {
    let mut stream =
        UnixStream::connect(path).with_context(|| format!("connecting to {}", path.display()))?;
    let mut header = [0u8; 5];
    let mut payload = Vec::with_capacity(4096);
    loop {
        match stream.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e).context("reading a request header"),
        }
        let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
        payload.resize(len, 0);
        stream
            .read_exact(&mut payload)
            .context("reading a request payload")?;
        let answer = match header[0] {
            OP_ADD_ONE => match <[u8; 8]>::try_from(payload.as_slice()) {
                Ok(b) => u64::from_le_bytes(b).wrapping_add(1),
                Err(_) => bail!("add-one request with {len} payload bytes instead of 8"),
            },
            OP_SUM => super::native::sum_bytes(&payload),
            other => bail!("unknown op {other}; this server knows 1 (add one) and 2 (sum)"),
        };
        stream.write_all(&answer.to_le_bytes())?;
    }
}
