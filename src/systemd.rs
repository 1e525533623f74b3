//! systemd readiness: `Type=notify` units (Debian's and Fedora's etcd.service) wait for
//! `READY=1` on `$NOTIFY_SOCKET`, which etcd sends right after "ready to serve client requests".

use std::os::unix::net::UnixDatagram;

/// Sends `READY=1` when started by systemd with `Type=notify`; does nothing otherwise.
///
/// # Errors
/// The socket error, when `$NOTIFY_SOCKET` is set but cannot be written (logged by the caller;
/// systemd would then time the unit out).
pub fn notify_ready() -> std::io::Result<()> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket (systemd's default in containers and user sessions).
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(b"READY=1", &addr)?;
    } else {
        socket.send_to(b"READY=1", &path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_is_sent_to_the_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let socket = UnixDatagram::unbound().unwrap();
        // Same code path as notify_ready() without touching the process environment.
        socket.send_to(b"READY=1", &path).unwrap();
        let mut buf = [0u8; 16];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
