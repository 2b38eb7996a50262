//! Parse, encode, seal and open for three messages, against the bare HMAC-MD5 of
//! the same bytes measured in the same run (these machines are noisy, so only
//! ratios are comparable between runs).
//!
//! (a) `mbus.hello ()`; (b) one reliable command with a string argument;
//! (c) five commands with strings and a piggy-backed ack.
//!
//! Run: `cargo bench --bench wire`. After criterion's own report, a table of
//! messages per second and ratios to the baseline, measured interleaved, is
//! printed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use hmac::{Hmac, KeyInit, Mac};
use rmbus::auth::{open, seal, Keys};
use rmbus::wire::{Address, Command, Framing, Header, Message, MessageType, Value};

const KEY: &[u8] = b"123156189112";

fn header(kind: MessageType, dst: &str, acks: Vec<u32>) -> Header {
    Header {
        seq: 4711,
        timestamp: 1_020_000_000_000,
        kind,
        src: Address::parse("(app:bench module:engine id:4711-1@192.168.1.1)").unwrap(),
        dst: Address::parse(dst).unwrap(),
        acks,
    }
}

fn messages() -> Vec<(&'static str, Message)> {
    let peer = "(app:bench module:gui id:4712-1@192.168.1.1)";
    vec![
        (
            "a_hello",
            Message {
                header: header(MessageType::Unreliable, "()", vec![]),
                commands: vec![Command::new("mbus.hello", vec![])],
            },
        ),
        (
            "b_reliable_string",
            Message {
                header: header(MessageType::Reliable, peer, vec![]),
                commands: vec![Command::new(
                    "tool.chat.say",
                    vec![Value::string("hello from the benchmark, a short line")],
                )],
            },
        ),
        (
            "c_five_commands_ack",
            Message {
                header: header(MessageType::Unreliable, peer, vec![4710]),
                commands: (1..=5)
                    .map(|i| {
                        Command::new(
                            format!("tool.status.item{i}"),
                            vec![Value::string(format!("status line number {i}"))],
                        )
                    })
                    .collect(),
            },
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let keys = Keys::md5_noencr(KEY).unwrap();
    for (name, msg) in messages() {
        let text = msg.encode(Framing::Lf).unwrap();
        let datagram = seal(&msg, &keys, Framing::Lf).unwrap();
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(1));
        group.bench_function("hmac_md5", |b| {
            b.iter(|| {
                let mut mac = <Hmac<md5::Md5> as KeyInit>::new_from_slice(KEY).unwrap();
                mac.update(black_box(&datagram[17..]));
                mac.finalize().into_bytes()
            })
        });
        group.bench_function("parse", |b| b.iter(|| Message::parse(black_box(&text))));
        group.bench_function("encode", |b| b.iter(|| black_box(&msg).encode(Framing::Lf)));
        group.bench_function("seal", |b| {
            b.iter(|| seal(black_box(&msg), &keys, Framing::Lf))
        });
        group.bench_function("open", |b| b.iter(|| open(black_box(&datagram), &keys)));
        group.finish();
    }
}

/// One timed operation; it returns something derived from its result so that
/// the work cannot be optimised away.
type Op<'a> = Box<dyn Fn() -> usize + 'a>;

/// Nanoseconds per call of `f`, over a batch of `n` calls.
fn time_batch<R>(n: u32, mut f: impl FnMut() -> R) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        black_box(f());
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The ratio table. Criterion measures each operation at a different moment,
/// and on a shared machine the speed drifts between them; here the baseline
/// and every operation are timed in alternating short batches, round after
/// round, and each ratio is the median of its per-round ratios.
fn print_ratios(rounds: usize) {
    let keys = Keys::md5_noencr(KEY).unwrap();
    println!("\nrmbus wire benchmark: time per message, and its ratio to the bare HMAC-MD5 of the");
    println!(
        "same bytes (fresh key per message, as UCL computes it), interleaved over {rounds} rounds."
    );
    println!("Ratio < 1: cheaper than that HMAC.\n");
    println!(
        "{:<22} {:>9} {:>10} {:>12} {:>8}",
        "message", "op", "ns/msg", "msg/s", "x hmac"
    );
    for (name, msg) in messages() {
        let text = msg.encode(Framing::Lf).unwrap();
        let datagram = seal(&msg, &keys, Framing::Lf).unwrap();
        let ops: [(&str, Op); 5] = [
            (
                "hmac_md5",
                Box::new(|| {
                    let mut mac = <Hmac<md5::Md5> as KeyInit>::new_from_slice(KEY).unwrap();
                    mac.update(black_box(&datagram[17..]));
                    mac.finalize().into_bytes()[0] as usize
                }),
            ),
            (
                "parse",
                Box::new(|| Message::parse(black_box(&text)).map_or(0, |m| m.commands.len())),
            ),
            (
                "encode",
                Box::new(|| black_box(&msg).encode(Framing::Lf).map_or(0, |t| t.len())),
            ),
            (
                "seal",
                Box::new(|| seal(black_box(&msg), &keys, Framing::Lf).map_or(0, |d| d.len())),
            ),
            (
                "open",
                Box::new(|| open(black_box(&datagram), &keys).map_or(0, |m| m.commands.len())),
            ),
        ];
        let mut times = vec![Vec::new(); ops.len()];
        for _ in 0..rounds {
            for (i, (_, op)) in ops.iter().enumerate() {
                times[i].push(time_batch(20_000, op));
            }
        }
        for (i, (op, _)) in ops.iter().enumerate() {
            let ratio = median(times[i].iter().zip(&times[0]).map(|(t, b)| t / b).collect());
            let ns = median(times[i].clone());
            println!(
                "{name:<22} {op:>9} {ns:>10.1} {:>12.0} {ratio:>8.2}",
                1e9 / ns
            );
        }
    }
    println!("\nFor scale: the UCL C library opens (verifies and parses) about 0.93 M msg/s for");
    println!("(a) and 0.33 M msg/s for (c) on this kind of machine, with its own parser and HMAC.");
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench(&mut c);
    c.final_summary();
    // `cargo test --benches` runs each benchmark once as a smoke test; the
    // ratio table is only for real runs.
    if std::env::args().any(|a| a == "--bench") {
        print_ratios(25);
    }
}
