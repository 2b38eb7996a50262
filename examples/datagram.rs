//! What an Mbus datagram is: build a message, seal it under each cipher,
//! open it again, and watch a forged copy be rejected.
//!
//! Run: `cargo run --example datagram`

use rmbus::auth::{open, seal, CipherAlgo, HashAlgo};
use rmbus::config::Config;
use rmbus::wire::{Address, Command, Framing, Header, Message, MessageType, Value};

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let msg = Message {
        header: Header {
            seq: 0,
            timestamp: 1_020_000_000_000,
            kind: MessageType::Reliable,
            src: Address::parse("(app:demo module:sensor id:4711-1@127.0.0.1)")?,
            dst: Address::parse("(app:demo module:logger id:4712-1@127.0.0.1)")?,
            acks: vec![],
        },
        commands: vec![Command::new(
            "demo.reading",
            vec![
                Value::string("temperature"),
                Value::Float(21.5),
                Value::symbol("CELSIUS"),
            ],
        )],
    };
    println!("The message, as Mbus text:\n{msg}\n");

    for (hash, cipher) in [
        (HashAlgo::HmacMd5_96, CipherAlgo::None),
        (HashAlgo::HmacSha1_96, CipherAlgo::Aes),
        (HashAlgo::HmacMd5_96, CipherAlgo::Des),
    ] {
        // Fresh random keys, as `rmbus keygen` writes them.
        let config = Config::generate(hash, cipher);
        let keys = config.keys()?;
        let datagram = seal(&msg, &keys, Framing::Lf)?;
        println!("{hash} + {cipher}: {} bytes", datagram.len());
        println!(
            "  digest line: {}",
            String::from_utf8_lossy(&datagram[..16])
        );
        let back = open(&datagram, &keys)?;
        assert_eq!(back, msg);
        println!(
            "  opened again: {} command(s) from {}",
            back.commands.len(),
            back.header.src
        );

        let mut forged = datagram.clone();
        let last = forged.len() - 2;
        forged[last] ^= 0x01;
        match open(&forged, &keys) {
            Ok(_) => println!("  a forged copy was accepted (this must not happen)"),
            Err(rejection) => println!(
                "  a copy with one bit flipped: rejected ({})",
                rejection.code()
            ),
        }
    }
    Ok(())
}
