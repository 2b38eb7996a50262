//! Command batching, as the UCL library does with its queue: the commands of
//! separate sends to the same destination with the same reliability, made
//! within one drain of the endpoint, go out in one message (RFC 3259 §5
//! allows any number of commands per message), up to a size bound so that
//! every peer and link takes the datagram whole. Nothing waits for more: the
//! open batches are sealed when the driver asks for transmits.
//!
//! A batch only holds commands and the ids of the sends they came from; the
//! transport seals it (with the acks owed to its destination) and, for a
//! reliable one, keeps it in flight as one message that settles every send.

use crate::wire::{Address, Command, EncodeError, MessageType, MessageView};

use super::MsgId;

/// Commands waiting for the next drain, for one destination and reliability.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) dst: Address,
    pub(crate) kind: MessageType,
    pub(crate) commands: Vec<Command>,
    /// The sends whose commands it holds, in the order they were made.
    pub(crate) ids: Vec<MsgId>,
    /// The length of its text without acks: the header (with the widest
    /// SeqNum) and every command line with its newline.
    pub(crate) body: usize,
}

/// The open batches of one endpoint, in the order they were opened.
#[derive(Debug, Default)]
pub(crate) struct Batches {
    open: Vec<Batch>,
    /// Reused for measuring encodings (no allocation per send).
    scratch: Vec<u8>,
    /// Reliable sends held in open batches.
    reliable_sends: usize,
}

impl Batches {
    /// The length of `commands`' lines, each with its `newline`, after
    /// checking that each has an Mbus form.
    pub(crate) fn measure(
        &mut self,
        commands: &[Command],
        newline: usize,
    ) -> Result<usize, EncodeError> {
        let mut len = 0;
        for c in commands {
            self.scratch.clear();
            c.encode_into(&mut self.scratch)?;
            len += self.scratch.len() + newline;
        }
        Ok(len)
    }

    /// The length of `header`'s line with its newline (its SeqNum should be
    /// the widest, `u32::MAX`, so that the length holds for any).
    pub(crate) fn header_len(&mut self, header: &MessageView<'_>, newline: usize) -> usize {
        self.scratch.clear();
        let empty = MessageView {
            commands: &[],
            acks: &[],
            ..*header
        };
        // No commands: nothing that could fail to encode.
        let _ = empty.encode_into(&mut self.scratch, crate::wire::Framing::Lf);
        // LF framing wrote the header and one LF.
        self.scratch.len() - 1 + newline
    }

    /// The open batch for `dst` and `kind`.
    pub(crate) fn get(&self, dst: &Address, kind: MessageType) -> Option<&Batch> {
        self.open.iter().find(|b| b.kind == kind && b.dst == *dst)
    }

    /// True if an open reliable batch goes to `dst`.
    pub(crate) fn has_reliable_to(&self, dst: &Address) -> bool {
        self.get(dst, MessageType::Reliable).is_some()
    }

    /// Adds the commands of send `id` (`len` octets of lines) to the open
    /// batch for `dst` and `kind`, which must exist.
    pub(crate) fn append(
        &mut self,
        dst: &Address,
        kind: MessageType,
        id: MsgId,
        commands: Vec<Command>,
        len: usize,
    ) {
        if let Some(b) = self
            .open
            .iter_mut()
            .find(|b| b.kind == kind && b.dst == *dst)
        {
            b.commands.extend(commands);
            b.ids.push(id);
            b.body += len;
            if kind == MessageType::Reliable {
                self.reliable_sends += 1;
            }
        }
    }

    /// Opens a batch for `dst` and `kind` with the commands of send `id`;
    /// `body` is the header's length plus theirs.
    pub(crate) fn open(
        &mut self,
        dst: Address,
        kind: MessageType,
        id: MsgId,
        commands: Vec<Command>,
        body: usize,
    ) {
        if kind == MessageType::Reliable {
            self.reliable_sends += 1;
        }
        self.open.push(Batch {
            dst,
            kind,
            commands,
            ids: vec![id],
            body,
        });
    }

    /// Closes the open batch for `dst` and `kind`, if any.
    pub(crate) fn close(&mut self, dst: &Address, kind: MessageType) -> Option<Batch> {
        let at = self
            .open
            .iter()
            .position(|b| b.kind == kind && b.dst == *dst)?;
        let b = self.open.remove(at);
        self.forget(&b);
        Some(b)
    }

    /// Closes every open batch, in the order they were opened.
    pub(crate) fn close_all(&mut self) -> Vec<Batch> {
        self.reliable_sends = 0;
        std::mem::take(&mut self.open)
    }

    /// Closes the open reliable batches (the endpoint is closing: they fail).
    pub(crate) fn close_reliable(&mut self) -> Vec<Batch> {
        let (reliable, rest) = std::mem::take(&mut self.open)
            .into_iter()
            .partition(|b| b.kind == MessageType::Reliable);
        self.open = rest;
        self.reliable_sends = 0;
        reliable
    }

    /// True if no batch is open.
    pub(crate) fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Reliable sends held in open batches.
    pub(crate) fn reliable_sends(&self) -> usize {
        self.reliable_sends
    }

    fn forget(&mut self, b: &Batch) {
        if b.kind == MessageType::Reliable {
            self.reliable_sends -= b.ids.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Value;

    #[test]
    fn batches_are_kept_per_destination_and_reliability_and_measured() {
        let a = Address::parse("(app:a id:1)").unwrap();
        let me = Address::parse("(app:me id:2)").unwrap();
        let mut batches = Batches::default();
        let cmd = Command::new("x.y", vec![Value::Integer(12)]);
        assert_eq!(batches.measure(std::slice::from_ref(&cmd), 1).unwrap(), 9);
        let bad = Command::new("no spaces", vec![]);
        assert!(batches.measure(&[bad], 1).is_err());
        let header = MessageView {
            seq: u32::MAX,
            timestamp: 1_000_000_000_000,
            kind: MessageType::Reliable,
            src: &me,
            dst: &a,
            acks: &[],
            commands: &[],
        };
        let text = "mbus/1.0 4294967295 1000000000000 R (app:me id:2) (app:a id:1) ()";
        assert_eq!(batches.header_len(&header, 2), text.len() + 2);
        batches.open(
            a.clone(),
            MessageType::Reliable,
            MsgId(1),
            vec![cmd.clone()],
            9,
        );
        batches.open(
            a.clone(),
            MessageType::Unreliable,
            MsgId(2),
            vec![cmd.clone()],
            9,
        );
        batches.append(&a, MessageType::Reliable, MsgId(3), vec![cmd], 9);
        assert_eq!(batches.reliable_sends(), 2);
        assert!(batches.has_reliable_to(&a));
        let b = batches.close(&a, MessageType::Reliable).unwrap();
        assert_eq!(
            (b.ids, b.commands.len(), b.body),
            (vec![MsgId(1), MsgId(3)], 2, 18)
        );
        assert_eq!(batches.reliable_sends(), 0);
        assert_eq!(batches.close_all().len(), 1);
        assert!(batches.is_empty());
    }
}
