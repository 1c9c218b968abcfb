//! The contenders: one module per plugin system, each doing the same work
//! per call (add one to a 64-bit integer; sum the bytes of a payload).

pub(crate) mod lua;
pub(crate) mod native;
pub(crate) mod plugkit;
pub(crate) mod socket;
pub(crate) mod typed;
pub(crate) mod wasm;

/// One plugin system, set up and ready to call.
pub(crate) trait Contender {
    /// `x + 1`, computed by the callee.
    fn add_one(&mut self, x: u64) -> anyhow::Result<u64>;
    /// The sum of `payload`'s bytes, computed by the callee.
    fn sum(&mut self, payload: &[u8]) -> anyhow::Result<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> Vec<u8> {
        // 1 KiB plus a tail that is not a multiple of 16, for the SIMD guest.
        (0..1024u32 + 13).map(|i| (i * 31 + 7) as u8).collect()
    }

    fn check(mut c: impl Contender, payload: &[u8]) {
        assert_eq!(c.add_one(41).ok(), Some(42));
        assert_eq!(c.add_one(u64::MAX).ok(), Some(0));
        let want: u64 = payload.iter().map(|b| u64::from(*b)).sum();
        assert_eq!(c.sum(payload).ok(), Some(want));
        assert_eq!(c.sum(&[]).ok(), Some(0));
    }

    #[test]
    fn box_dyn_adds_one_and_sums() {
        check(native::BoxDyn::new(), &ramp());
    }

    #[test]
    fn wasmtime_guest_adds_one_and_sums_with_a_tail() {
        check(wasm::Wasmtime::new().expect("wasmtime guest"), &ramp());
    }

    #[test]
    fn extism_guest_adds_one_and_sums() {
        check(wasm::Extism::new().expect("Extism guest"), &ramp()[..1024]);
    }

    #[test]
    fn extism_refuses_a_payload_it_cannot_read_whole() {
        let mut c = wasm::Extism::new().expect("Extism guest");
        let err = c
            .sum(&[1, 2, 3])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("multiple of 8, not 3"), "{err}");
    }

    #[test]
    fn lua_script_adds_one_and_sums_with_a_tail() {
        check(lua::LuaScript::new().expect("Lua"), &ramp());
    }

    #[test]
    fn socket_server_answers_until_the_client_closes() {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let server = std::thread::spawn({
            let path = path.clone();
            move || socket::serve(&path)
        });
        let (mut client, _) = listener.accept().expect("accept");
        let mut ask = |op: u8, payload: &[u8]| {
            let mut request = vec![op];
            request.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            request.extend_from_slice(payload);
            client.write_all(&request).expect("write");
            let mut reply = [0u8; 8];
            client.read_exact(&mut reply).expect("read");
            u64::from_le_bytes(reply)
        };
        assert_eq!(ask(1, &41u64.to_le_bytes()), 42);
        assert_eq!(ask(2, &[200; 300]), 60_000);
        drop(client);
        assert!(server.join().expect("server thread").is_ok());
    }
}
