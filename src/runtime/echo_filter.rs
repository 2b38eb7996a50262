//! A kernel filter that keeps a lone entity's own multicast off its group
//! socket.
//!
//! Multicast loop is on (entities on one host must hear each other, RFC 3259
//! §6), so every datagram an entity sends to the group also lands on its own
//! group socket, already while `sendto` runs. Read and dropped in user space,
//! each costs a wake-up and two reads; on a bus of two entities that is half
//! of all the datagrams each one reads. On Linux a classic BPF socket filter
//! (`SO_ATTACH_FILTER`) drops them in the kernel instead: it matches the
//! datagram's source address and port against the entity's own socket.
//!
//! A host with several entities must not attach it: a sibling sends from the
//! same socket, and the siblings hear each other through these copies.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;

/// Keeps datagrams from `own` off `group` (`on`), or lets them through again.
/// Returns whether the kernel filters them now; `false` also where the system
/// has no socket filters, and the host then drops them itself.
pub fn set(group: &impl AsFd, own: SocketAddr, on: bool) -> io::Result<bool> {
    imp::set(group, own, on)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use super::*;
    use socket2::{SockFilter, SockRef};

    /// `BPF_LD | BPF_H | BPF_ABS`: load the 16-bit word at `k`.
    const LOAD_HALF: u16 = 0x28;
    /// `BPF_LD | BPF_W | BPF_ABS`: load the 32-bit word at `k`.
    const LOAD_WORD: u16 = 0x20;
    /// `BPF_JMP | BPF_JEQ | BPF_K`: compare with `k`.
    const JUMP_IF_EQUAL: u16 = 0x15;
    /// `BPF_RET | BPF_K`: keep `k` bytes (0 drops the datagram).
    const RETURN: u16 = 0x06;
    /// `SKF_NET_OFF`: offsets from here on count from the IP header; plain
    /// offsets count from the UDP header, where a socket filter starts.
    const NET: u32 = 0xFFF0_0000;
    /// Where the source address starts in an IPv4 and an IPv6 header.
    const IPV4_SOURCE: u32 = 12;
    const IPV6_SOURCE: u32 = 8;

    pub fn set(group: &impl AsFd, own: SocketAddr, on: bool) -> io::Result<bool> {
        let socket = SockRef::from(group);
        if !on {
            return match socket.detach_filter() {
                Ok(()) => Ok(false),
                // ENOENT: there was none.
                Err(e) if e.raw_os_error() == Some(2) => Ok(false),
                Err(e) => Err(e),
            };
        }
        let code: Vec<SockFilter> = instructions(own)
            .into_iter()
            .map(|(code, jt, jf, k)| SockFilter::new(code, jt, jf, k))
            .collect();
        socket.attach_filter(&code)?;
        Ok(true)
    }

    /// Drop when the UDP source port and then every word of the source
    /// address match `own`; keep everything else whole.
    fn instructions(own: SocketAddr) -> Vec<(u16, u8, u8, u32)> {
        let (at, words): (u32, Vec<u32>) = match own.ip() {
            IpAddr::V4(ip) => (IPV4_SOURCE, vec![u32::from(ip)]),
            IpAddr::V6(ip) => (
                IPV6_SOURCE,
                ip.octets()
                    .chunks(4)
                    .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
                    .collect(),
            ),
        };
        // Each comparison that fails jumps to the final "keep": past the
        // remaining pairs of load and compare and the "drop".
        let mut code = vec![
            (LOAD_HALF, 0, 0, 0),
            (
                JUMP_IF_EQUAL,
                0,
                (2 * words.len() + 1) as u8,
                own.port().into(),
            ),
        ];
        for (i, word) in words.iter().enumerate() {
            let left = words.len() - i - 1;
            code.push((LOAD_WORD, 0, 0, NET + at + 4 * i as u32));
            code.push((JUMP_IF_EQUAL, 0, (2 * left + 1) as u8, *word));
        }
        code.push((RETURN, 0, 0, 0));
        code.push((RETURN, 0, 0, u32::MAX));
        code
    }

    /// The program as `(code, jt, jf, k)` tuples, for the tests.
    #[cfg(test)]
    pub fn program_for_test(own: SocketAddr) -> Vec<(u16, u8, u8, u32)> {
        instructions(own)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod imp {
    use super::*;

    pub fn set(_group: &impl AsFd, _own: SocketAddr, _on: bool) -> io::Result<bool> {
        Ok(false)
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::imp::program_for_test as program;

    #[test]
    fn every_mismatch_jumps_to_keep_and_a_full_match_reaches_drop() {
        for own in ["127.0.0.1:40000", "[fe80::1]:40000"] {
            let code = program(own.parse().unwrap());
            let last = code.len() - 1;
            assert_eq!(code[last], (0x06, 0, 0, u32::MAX), "{own}: keep");
            assert_eq!(code[last - 1], (0x06, 0, 0, 0), "{own}: drop");
            for (i, &(op, jt, jf, _)) in code.iter().enumerate() {
                if op == 0x15 {
                    assert_eq!(i + 1 + jf as usize, last, "{own}: compare {i} on mismatch");
                    assert_eq!(jt, 0, "{own}: compare {i} on match goes on");
                }
            }
            assert_eq!(code[1].3, 40000, "{own}: the port is compared first");
        }
    }
}
