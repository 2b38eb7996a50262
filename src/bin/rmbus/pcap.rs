//! Standard pcap files (the format tcpdump and Wireshark read): `monitor
//! --pcap` writes what it sees as raw IP packets (link type 101); `monitor
//! --read` takes UDP payloads out of captures with raw IP, Ethernet, Linux
//! cooked (v1 and v2) or BSD loopback framing.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAGIC_US: u32 = 0xa1b2_c3d4;
const MAGIC_NS: u32 = 0xa1b2_3c4d;
const LINKTYPE_NULL: u32 = 0;
const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_RAW: u32 = 101;
const LINKTYPE_LINUX_SLL: u32 = 113;
const LINKTYPE_IPV4: u32 = 228;
const LINKTYPE_IPV6: u32 = 229;
const LINKTYPE_LINUX_SLL2: u32 = 276;

/// Writes UDP datagrams as a pcap capture of raw IP packets.
pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    pub fn new(mut out: W) -> io::Result<Writer<W>> {
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&MAGIC_US.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes());
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&0i32.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&65_535u32.to_le_bytes());
        header.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
        out.write_all(&header)?;
        out.flush()?;
        Ok(Writer { out })
    }

    /// One datagram from `src` to `dst` (same IP family), received at `at`.
    pub fn write(
        &mut self,
        at: SystemTime,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
    ) -> io::Result<()> {
        let packet = ip_packet(src, dst, payload);
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut record = Vec::with_capacity(16 + packet.len());
        record.extend_from_slice(&(since.as_secs() as u32).to_le_bytes());
        record.extend_from_slice(&since.subsec_micros().to_le_bytes());
        record.extend_from_slice(&(packet.len() as u32).to_le_bytes());
        record.extend_from_slice(&(packet.len() as u32).to_le_bytes());
        record.extend_from_slice(&packet);
        self.out.write_all(&record)?;
        self.out.flush()
    }
}

fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in chunks {
        for pair in chunk.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn udp_header(src: u16, dst: u16, len: usize) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[0..2].copy_from_slice(&src.to_be_bytes());
    h[2..4].copy_from_slice(&dst.to_be_bytes());
    h[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    h
}

/// An IPv4 or IPv6 packet carrying `payload` in UDP.
fn ip_packet(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let mut udp = udp_header(src.port(), dst.port(), udp_len).to_vec();
    match (src.ip(), dst.ip()) {
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let pseudo = [
                s.octets().as_slice(),
                d.octets().as_slice(),
                &(udp_len as u32).to_be_bytes(),
                &[0, 0, 0, 17],
            ]
            .concat();
            let sum = checksum(&[&pseudo, &udp, payload]);
            udp[6..8].copy_from_slice(&(if sum == 0 { 0xffff } else { sum }).to_be_bytes());
            let mut p = vec![0x60, 0, 0, 0];
            p.extend_from_slice(&(udp_len as u16).to_be_bytes());
            p.extend_from_slice(&[17, 1]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&udp);
            p.extend_from_slice(payload);
            p
        }
        (s, d) => {
            let to4 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.octets(),
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or([0; 4], |v4| v4.octets()),
            };
            let total = 20 + udp_len;
            let mut h = vec![0x45, 0];
            h.extend_from_slice(&(total as u16).to_be_bytes());
            h.extend_from_slice(&[0, 0, 0x40, 0, 1, 17, 0, 0]);
            h.extend_from_slice(&to4(s));
            h.extend_from_slice(&to4(d));
            let sum = checksum(&[&h]);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            h.extend_from_slice(&udp);
            h.extend_from_slice(payload);
            h
        }
    }
}

/// One UDP datagram found in a capture.
pub struct Datagram {
    pub at: SystemTime,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
}

/// Reads every UDP datagram of a pcap capture.
pub fn read_all(mut input: impl Read) -> Result<Vec<Datagram>, String> {
    let mut data = Vec::new();
    input.read_to_end(&mut data).map_err(|e| e.to_string())?;
    let head = data
        .get(..24)
        .ok_or("not a pcap file: shorter than its header")?;
    let magic_le = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let magic_be = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let (big, nanos) = match (magic_le, magic_be) {
        (MAGIC_US, _) => (false, false),
        (MAGIC_NS, _) => (false, true),
        (_, MAGIC_US) => (true, false),
        (_, MAGIC_NS) => (true, true),
        _ if head.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) => {
            return Err("pcapng files are not supported; convert with `editcap -F pcap`".into())
        }
        _ => return Err("not a pcap file (unknown magic number)".into()),
    };
    let u32_at = |b: &[u8], i: usize| {
        let w = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if big {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        }
    };
    let link = u32_at(head, 20) & 0x0fff_ffff;
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let secs = u32_at(&data, at);
        let frac = u32_at(&data, at + 4);
        let caplen = u32_at(&data, at + 8) as usize;
        let start = at + 16;
        let Some(frame) = data.get(start..start + caplen) else {
            return Err(format!("truncated packet record at byte {at}"));
        };
        at = start + caplen;
        let sub = if nanos {
            Duration::from_nanos(u64::from(frac))
        } else {
            Duration::from_micros(u64::from(frac))
        };
        let when = UNIX_EPOCH + Duration::from_secs(u64::from(secs)) + sub;
        if let Some(ip) = strip_link(link, frame) {
            if let Some((src, dst, payload)) = udp_of(ip) {
                out.push(Datagram {
                    at: when,
                    src,
                    dst,
                    payload: payload.to_vec(),
                });
            }
        }
    }
    Ok(out)
}

/// The IP packet inside a link-layer frame.
fn strip_link(link: u32, frame: &[u8]) -> Option<&[u8]> {
    fn ether(ty: u16, rest: &[u8]) -> Option<&[u8]> {
        (ty == 0x0800 || ty == 0x86dd).then_some(rest)
    }
    match link {
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => Some(frame),
        LINKTYPE_NULL => frame.get(4..),
        LINKTYPE_ETHERNET => {
            let mut ty = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
            let mut rest = frame.get(14..)?;
            if ty == 0x8100 {
                ty = u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]);
                rest = rest.get(4..)?;
            }
            ether(ty, rest)
        }
        LINKTYPE_LINUX_SLL => ether(
            u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]),
            frame.get(16..)?,
        ),
        LINKTYPE_LINUX_SLL2 => ether(
            u16::from_be_bytes([*frame.first()?, *frame.get(1)?]),
            frame.get(20..)?,
        ),
        _ => None,
    }
}

/// Source, destination and payload of a UDP packet (unfragmented).
fn udp_of(ip: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    let version = ip.first()? >> 4;
    let (src, dst, udp) = match version {
        4 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let fragmented = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x3fff != 0;
            if *ip.get(9)? != 17 || fragmented || ihl < 20 {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
            let s: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let d: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            (IpAddr::from(s), IpAddr::from(d), ip.get(ihl..total)?)
        }
        6 => {
            if *ip.get(6)? != 17 {
                return None;
            }
            let s: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let d: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            (IpAddr::from(s), IpAddr::from(d), ip.get(40..)?)
        }
        _ => return None,
    };
    let sport = u16::from_be_bytes([*udp.first()?, *udp.get(1)?]);
    let dport = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    let len = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?])).clamp(8, udp.len());
    Some((
        SocketAddr::new(src, sport),
        SocketAddr::new(dst, dport),
        udp.get(8..len)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_captures_read_back() {
        let mut file = Vec::new();
        let mut w = Writer::new(&mut file).unwrap();
        let at = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let v4 = (
            "127.0.0.1:40000".parse().unwrap(),
            "239.255.255.247:47000".parse().unwrap(),
        );
        let v6 = (
            "[fe80::1]:40000".parse().unwrap(),
            "[ff02::300]:47000".parse().unwrap(),
        );
        w.write(at, v4.0, v4.1, b"odd length").unwrap();
        w.write(at, v6.0, v6.1, b"hello v6").unwrap();
        let got = read_all(file.as_slice()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].src, got[0].dst, got[0].payload.as_slice()),
            (v4.0, v4.1, b"odd length".as_slice())
        );
        assert_eq!(
            (got[1].src, got[1].dst, got[1].payload.as_slice()),
            (v6.0, v6.1, b"hello v6".as_slice())
        );
        assert_eq!(got[0].at, at);
        // The IPv4 header checksum verifies (sums to 0xffff with itself).
        let packet = ip_packet(v4.0, v4.1, b"x");
        assert_eq!(checksum(&[&packet[..20]]), 0);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(read_all(&b"short"[..]).is_err());
        assert!(read_all(&[0u8; 40][..]).is_err());
        let mut file = Vec::new();
        Writer::new(&mut file).unwrap();
        file.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff, 0, 0]);
        assert!(read_all(file.as_slice()).is_err(), "truncated record");
    }
}
