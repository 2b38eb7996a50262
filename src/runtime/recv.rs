//! Reading many datagrams per system call (`recvmmsg(2)`): a wake-up costs
//! one read per socket when a few datagrams wait, instead of one per
//! datagram plus the one that would block; a queue of many is read
//! [`BATCH`] at a time.

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};

/// Datagrams read per call.
pub(crate) const BATCH: usize = 16;
/// Room for one datagram: the largest UDP payload fits.
const SLOT: usize = 65_536;

/// Buffers for [`BATCH`] datagrams, reused by every read. (The kernel's
/// headers are made per read: nix's hold raw pointers, which would make the
/// host not `Send`, and the crate has no unsafe code to vouch for them.)
pub(crate) struct Receiver {
    /// `BATCH` slots of `SLOT` octets (zeroed lazily by the allocator: only
    /// the pages datagrams touch become resident).
    buf: Vec<u8>,
    /// The length and source of each datagram of the last read.
    got: [(usize, Option<SocketAddr>); BATCH],
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

impl Receiver {
    pub(crate) fn new() -> Receiver {
        Receiver {
            buf: vec![0; BATCH * SLOT],
            got: [(0, None); BATCH],
        }
    }

    /// Reads up to [`BATCH`] datagrams from `fd` without blocking; returns
    /// how many (0 when none was waiting). Fewer than `BATCH` means the
    /// socket was empty when read.
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let Receiver { buf, got } = self;
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut slots = buf.chunks_exact_mut(SLOT);
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(slots.next().unwrap_or_default())]);
        let results = match recvmmsg(
            fd,
            &mut headers,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        ) {
            Ok(results) => results,
            Err(Errno::EAGAIN) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut n = 0;
        for (slot, r) in got.iter_mut().zip(results) {
            *slot = (r.bytes.min(SLOT), r.address.and_then(socket_addr));
            n += 1;
        }
        Ok(n)
    }

    /// Datagram `i` of the last read, and where it came from.
    pub(crate) fn datagram(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let (len, from) = *self.got.get(i)?;
        let at = i * SLOT;
        Some((self.buf.get(at..at + len)?, from?))
    }
}

fn socket_addr(s: SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    let v6 = s.as_sockaddr_in6()?;
    Some(SocketAddr::V6(SocketAddrV6::from(*v6)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_read_takes_what_waits_in_one_call_and_says_when_nothing_does() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut r = Receiver::new();
        assert_eq!(r.recv(rx.as_raw_fd()).unwrap(), 0, "nothing waits");
        for i in 0..3u8 {
            tx.send_to(&[i; 5], rx.local_addr().unwrap()).unwrap();
        }
        // Loopback delivers before send_to returns: one read takes all three.
        assert_eq!(r.recv(rx.as_raw_fd()).unwrap(), 3);
        let got: Vec<Vec<u8>> = (0..3)
            .map(|i| {
                let (data, from) = r.datagram(i).unwrap();
                assert_eq!(from, tx.local_addr().unwrap());
                data.to_vec()
            })
            .collect();
        assert_eq!(got, vec![vec![0; 5], vec![1; 5], vec![2; 5]]);
        assert_eq!(r.recv(rx.as_raw_fd()).unwrap(), 0);
    }
}
