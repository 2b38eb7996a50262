//! Captures (the formats tcpdump and Wireshark read and write): `monitor
//! --pcap` writes what it sees as raw IP packets (link type 101), as classic
//! pcap or as pcapng ([`Format`]); `monitor --read` takes the UDP payloads out of pcap and pcapng files
//! (Wireshark's default) with raw IP, Ethernet, Linux cooked (v1 and v2) or
//! BSD loopback framing. The files are read and written by `pcap-file`, the
//! link and IP layers by `etherparse`.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{Block, PcapNgReader, PcapNgWriter};
use pcap_file::{DataLink, PcapError};

/// The file format a capture is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Classic pcap (libpcap's format, what tcpdump writes).
    Pcap,
    /// pcapng (Wireshark's own).
    Pcapng,
}

impl Format {
    /// The format a file name asks for: pcapng for `.pcapng`, else pcap.
    pub fn of(path: &std::path::Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("pcapng") => Format::Pcapng,
            _ => Format::Pcap,
        }
    }
}

/// The writer of one format.
enum Sink<W: Write> {
    Pcap(PcapWriter<Shared<W>>),
    Pcapng(PcapNgWriter<Shared<W>>),
}

/// Writes UDP datagrams as a capture of raw IP packets, each record flushed
/// as it is written (a live capture is readable while it grows).
pub struct Writer<W: Write> {
    sink: Sink<W>,
    out: Shared<W>,
}

/// The output, shared between the pcap writer and us (to flush it).
struct Shared<W>(Rc<RefCell<W>>);

impl<W: Write> Write for Shared<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, format: Format) -> io::Result<Writer<W>> {
        let shared = Rc::new(RefCell::new(out));
        let sink = match format {
            Format::Pcap => {
                let header = PcapHeader {
                    datalink: DataLink::RAW,
                    endianness: pcap_file::Endianness::Little,
                    ..PcapHeader::default()
                };
                Sink::Pcap(
                    PcapWriter::with_header(Shared(Rc::clone(&shared)), header)
                        .map_err(io::Error::other)?,
                )
            }
            Format::Pcapng => {
                let mut w =
                    PcapNgWriter::new(Shared(Rc::clone(&shared))).map_err(io::Error::other)?;
                let interface = InterfaceDescriptionBlock {
                    linktype: DataLink::RAW,
                    snaplen: 0,
                    // Timestamps in nanoseconds, as the packets carry them.
                    options: vec![InterfaceDescriptionOption::IfTsResol(9)],
                };
                w.write_pcapng_block(interface).map_err(io::Error::other)?;
                Sink::Pcapng(w)
            }
        };
        let mut out = Shared(shared);
        out.flush()?;
        Ok(Writer { sink, out })
    }

    /// One datagram from `src` to `dst` (same IP family), received at `at`.
    pub fn write(
        &mut self,
        at: SystemTime,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
    ) -> io::Result<()> {
        let packet = ip_packet(src, dst, payload)?;
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        match &mut self.sink {
            Sink::Pcap(w) => {
                let record = PcapPacket::new(since, packet.len() as u32, &packet);
                w.write_packet(&record).map_err(io::Error::other)?;
            }
            Sink::Pcapng(w) => {
                let block = EnhancedPacketBlock {
                    interface_id: 0,
                    timestamp: since,
                    original_len: packet.len() as u32,
                    data: std::borrow::Cow::Borrowed(&packet),
                    options: Vec::new(),
                };
                w.write_pcapng_block(block).map_err(io::Error::other)?;
            }
        }
        self.out.flush()
    }
}

/// An IP packet (TTL or hop limit 1) carrying one UDP datagram, with its
/// checksums.
fn ip_packet(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> io::Result<Vec<u8>> {
    let builder = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), 1),
        (IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ipv6(s.octets(), d.octets(), 1),
        _ => {
            return Err(io::Error::other(
                "source and destination of different IP families",
            ))
        }
    }
    .udp(src.port(), dst.port());
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, payload).map_err(io::Error::other)?;
    Ok(out)
}

/// One UDP datagram found in a capture.
pub struct Datagram {
    pub at: SystemTime,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
}

/// What a capture held: every UDP datagram of its complete records, and why
/// reading stopped early, if it did (a file cut off mid-write).
pub struct Capture {
    pub datagrams: Vec<Datagram>,
    pub cut_short: Option<String>,
}

/// Reads every UDP datagram of a pcap or pcapng capture. Only a file that is
/// not a capture at all is an error; one cut off after its header gives its
/// complete records and says where it stopped.
pub fn read_all(mut input: impl Read) -> Result<Capture, String> {
    let mut data = Vec::new();
    input.read_to_end(&mut data).map_err(|e| e.to_string())?;
    if data.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        read_pcapng(&data)
    } else {
        read_pcap(&data)
    }
}

fn read_pcap(data: &[u8]) -> Result<Capture, String> {
    let mut reader = PcapReader::new(data).map_err(|e| match e {
        PcapError::IncompleteBuffer => "not a pcap file: shorter than its header".to_owned(),
        e => format!("not a pcap or pcapng file ({e})"),
    })?;
    let link = reader.header().datalink;
    let mut capture = Capture {
        datagrams: Vec::new(),
        cut_short: None,
    };
    let mut n = 0usize;
    while let Some(next) = reader.next_packet() {
        match next {
            Ok(packet) => {
                n += 1;
                capture.push(link, packet.timestamp, &packet.data);
            }
            Err(e) => {
                capture.cut_short = Some(cut_short(n, &e));
                break;
            }
        }
    }
    Ok(capture)
}

fn read_pcapng(data: &[u8]) -> Result<Capture, String> {
    let mut reader = PcapNgReader::new(data).map_err(|e| format!("not a pcapng file ({e})"))?;
    // Per interface: its link type and its timestamp resolution (the
    // if_tsresol option; pcap-file hands the raw ticks over as nanoseconds).
    let mut links: Vec<(DataLink, u8)> = Vec::new();
    let mut capture = Capture {
        datagrams: Vec::new(),
        cut_short: None,
    };
    let mut n = 0usize;
    while let Some(next) = reader.next_block() {
        match next {
            Ok(Block::SectionHeader(_)) => links.clear(),
            Ok(Block::InterfaceDescription(idb)) => {
                let resolution = idb
                    .options
                    .iter()
                    .find_map(|o| match o {
                        InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
                        _ => None,
                    })
                    .unwrap_or(6);
                links.push((idb.linktype, resolution));
            }
            Ok(Block::EnhancedPacket(epb)) => {
                n += 1;
                if let Some(&(link, resolution)) = links.get(epb.interface_id as usize) {
                    let at = from_ticks(epb.timestamp.as_nanos(), resolution);
                    capture.push(link, at, &epb.data);
                }
            }
            Ok(Block::SimplePacket(spb)) => {
                n += 1;
                if let Some(&(link, _)) = links.first() {
                    capture.push(link, Duration::ZERO, &spb.data);
                }
            }
            Ok(_) => {}
            Err(e) => {
                capture.cut_short = Some(cut_short(n, &e));
                break;
            }
        }
    }
    Ok(capture)
}

/// A pcapng timestamp of `ticks` units of the interface's resolution (the
/// if_tsresol option: 10^-r seconds, or 2^-r with the high bit set).
fn from_ticks(ticks: u128, resolution: u8) -> Duration {
    let per_second: u128 = if resolution & 0x80 == 0 {
        10u128.saturating_pow(u32::from(resolution))
    } else {
        1u128
            .checked_shl(u32::from(resolution & 0x7f))
            .unwrap_or(u128::MAX)
    };
    let secs = ticks / per_second.max(1);
    let nanos = (ticks % per_second.max(1)) * 1_000_000_000 / per_second.max(1);
    Duration::new(u64::try_from(secs).unwrap_or(u64::MAX), nanos as u32)
}

fn cut_short(records: usize, e: &PcapError) -> String {
    match e {
        PcapError::IncompleteBuffer => {
            format!(
                "the capture ends inside record {} (cut off mid-write?)",
                records + 1
            )
        }
        e => format!("record {} cannot be read: {e}", records + 1),
    }
}

impl Capture {
    fn push(&mut self, link: DataLink, timestamp: Duration, frame: &[u8]) {
        if let Some((src, dst, payload)) = udp_of(link, frame) {
            self.datagrams.push(Datagram {
                at: UNIX_EPOCH + timestamp,
                src,
                dst,
                payload: payload.to_vec(),
            });
        }
    }
}

/// Source, destination and payload of the UDP datagram in a frame of link
/// type `link` (an unfragmented one; anything else is skipped).
fn udp_of(link: DataLink, frame: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    let sliced = match link {
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => SlicedPacket::from_ip(frame),
        DataLink::ETHERNET => SlicedPacket::from_ethernet(frame),
        DataLink::LINUX_SLL => SlicedPacket::from_linux_sll(frame),
        // BSD loopback: a 4-octet address family, then the IP packet.
        DataLink::NULL | DataLink::LOOP => SlicedPacket::from_ip(frame.get(4..)?),
        // Linux cooked v2: the protocol type, then 18 more octets, then IP.
        DataLink::LINUX_SLL2 => SlicedPacket::from_ip(frame.get(20..)?),
        _ => return None,
    }
    .ok()?;
    let (src, dst) = match sliced.net? {
        NetSlice::Ipv4(ip) => {
            if ip.is_payload_fragmented() {
                return None;
            }
            let h = ip.header();
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
            )
        }
        NetSlice::Ipv6(ip) => {
            if ip.is_payload_fragmented() {
                return None;
            }
            let h = ip.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
            )
        }
        _ => return None,
    };
    let TransportSlice::Udp(udp) = sliced.transport? else {
        return None;
    };
    Some((
        SocketAddr::new(src, udp.source_port()),
        SocketAddr::new(dst, udp.destination_port()),
        udp.payload(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(records: &[(SocketAddr, SocketAddr, &[u8])], at: SystemTime) -> Vec<u8> {
        written_as(records, at, Format::Pcap)
    }

    fn written_as(
        records: &[(SocketAddr, SocketAddr, &[u8])],
        at: SystemTime,
        format: Format,
    ) -> Vec<u8> {
        let mut file = Vec::new();
        let mut w = Writer::new(&mut file, format).unwrap();
        for (s, d, p) in records {
            w.write(at, *s, *d, p).unwrap();
        }
        file
    }

    #[test]
    fn written_captures_read_back() {
        let at = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let v4 = (
            "127.0.0.1:40000".parse().unwrap(),
            "239.255.255.247:47000".parse().unwrap(),
        );
        let v6 = (
            "[fe80::1]:40000".parse().unwrap(),
            "[ff02::300]:47000".parse().unwrap(),
        );
        let file = written(
            &[(v4.0, v4.1, b"odd length"), (v6.0, v6.1, b"hello v6")],
            at,
        );
        let got = read_all(file.as_slice()).unwrap();
        assert!(got.cut_short.is_none());
        let got = got.datagrams;
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
        // The same as pcapng: its own magic, the same records and times.
        let ng = written_as(&[(v4.0, v4.1, b"odd length")], at, Format::Pcapng);
        assert_eq!(
            &ng[..4],
            &[0x0a, 0x0d, 0x0d, 0x0a],
            "a pcapng section header"
        );
        let got = read_all(ng.as_slice()).unwrap().datagrams;
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].at, got[0].payload.as_slice()),
            (at, b"odd length".as_slice())
        );
        assert_eq!(Format::of(std::path::Path::new("x.PCAPNG")), Format::Pcapng);
        assert_eq!(Format::of(std::path::Path::new("x.pcap")), Format::Pcap);
    }

    #[test]
    fn a_capture_cut_off_mid_record_gives_its_complete_records() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (s, d) = (
            "127.0.0.1:40000".parse().unwrap(),
            "239.255.255.247:47000".parse().unwrap(),
        );
        let mut file = written(&[(s, d, b"one"), (s, d, b"two"), (s, d, b"three")], at);
        file.truncate(file.len() - 4);
        let got = read_all(file.as_slice()).unwrap();
        let payloads: Vec<&[u8]> = got.datagrams.iter().map(|d| d.payload.as_slice()).collect();
        assert_eq!(payloads, [b"one".as_slice(), b"two".as_slice()]);
        assert!(
            got.cut_short
                .as_deref()
                .is_some_and(|w| w.contains("record 3")),
            "{:?}",
            got.cut_short
        );
    }

    #[test]
    fn pcapng_ticks_follow_the_interface_resolution() {
        assert_eq!(from_ticks(1_500_000, 6), Duration::from_millis(1500));
        assert_eq!(from_ticks(1_500_000_000, 9), Duration::from_millis(1500));
        assert_eq!(from_ticks(3 << 10, 0x80 | 10), Duration::from_secs(3));
        assert_eq!(from_ticks(7, 0), Duration::from_secs(7));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(read_all(&b"short"[..]).is_err());
        assert!(read_all(&[0u8; 40][..]).is_err());
        assert!(read_all(&[0x0a, 0x0d, 0x0d, 0x0a, 1, 2][..]).is_err());
    }
}
