//! UCL common's `mbus_parser.h` (version 1.2.19): a parser that works in
//! place over the caller's string, and the string coding of RFC 3259 §5.3
//! with rmbus's escapes (`\\`, `\"`, `\n` written; any `\X` read as X).
//!
//! Ownership: `mbus_parse_init(str)` keeps `str`, which stays the
//! caller's; the parse functions write NUL bytes into it and return
//! pointers into it, valid while `str` is. A `struct mbus_parser *` is a
//! token of [`PARSERS`], checked on every call. `mbus_encode_str`'s result
//! comes from `malloc`, for `xfree` (or `free`). Any thread may call these
//! functions; one parser is used by one thread at a time.

use std::ffi::{c_char, c_double, c_int, c_void};
use std::sync::Mutex;

use crate::guard::{self, guarded, log};
use crate::table::Table;

/// `struct mbus_parser`: opaque to C; a pointer to it is a token of
/// [`PARSERS`].
#[repr(C)]
pub struct MbusParser {
    _opaque: [u8; 0],
}

/// Every live `struct mbus_parser *`.
pub static PARSERS: Table<Mutex<Cursor>> = Table::new();

/// Where a parser is in its string.
pub struct Cursor {
    /// The string's address (kept as a number: the string is the caller's).
    base: usize,
    /// Its length without the NUL.
    len: usize,
    /// The next byte to read.
    pos: usize,
}

impl Cursor {
    /// The string, writable, NUL included.
    ///
    /// # Safety
    ///
    /// The string given to `mbus_parse_init` is still valid and nobody
    /// else uses it (mbus_parser.h's precondition).
    unsafe fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the caller's promise above; len + 1 bytes were there at
        // mbus_parse_init, and only we write into them.
        unsafe { std::slice::from_raw_parts_mut(self.base as *mut u8, self.len + 1) }
    }

    fn pointer(&self, at: usize) -> *mut c_char {
        (self.base + at) as *mut c_char
    }
}

/// C's `isspace` in the "C" locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The parts of a cursor's string the parse functions work on.
struct Scan<'a> {
    buf: &'a mut [u8],
    len: usize,
    pos: usize,
}

impl Scan<'_> {
    fn skip_space(&mut self) {
        while self.pos < self.len && is_space(self.buf[self.pos]) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        (self.pos < self.len).then(|| self.buf[self.pos])
    }

    /// The end of the token at `pos` (the next space or the end).
    fn token_end(&self) -> usize {
        let mut end = self.pos;
        while end < self.len && !is_space(self.buf[end]) {
            end += 1;
        }
        end
    }

    /// Ends a token at `end` with a NUL (if it is not the string's end)
    /// and moves past it.
    fn terminate(&mut self, end: usize) {
        if end < self.len {
            self.buf[end] = 0;
            self.pos = end + 1;
        } else {
            self.pos = end;
        }
    }

    /// `(…)`: the start of its inside; the closing parenthesis becomes NUL.
    fn list(&mut self) -> Option<usize> {
        self.skip_space();
        if self.peek() != Some(b'(') {
            return None;
        }
        let start = self.pos + 1;
        let (mut at, mut depth, mut in_string) = (start, 0usize, false);
        while at < self.len {
            match (in_string, self.buf[at]) {
                (true, b'\\') => at += 1,
                (true, b'"') | (false, b'"') => in_string = !in_string,
                (false, b'(') => depth += 1,
                (false, b')') if depth == 0 => {
                    self.buf[at] = 0;
                    self.pos = at + 1;
                    return Some(start);
                }
                (false, b')') => depth -= 1,
                _ => {}
            }
            at += 1;
        }
        None
    }

    /// `"…"`: its start (the opening quote), NUL after the closing one.
    fn string(&mut self) -> Option<usize> {
        self.skip_space();
        if self.peek() != Some(b'"') {
            return None;
        }
        let start = self.pos;
        let mut at = start + 1;
        while at < self.len {
            match self.buf[at] {
                b'\\' => at += 1,
                b'"' => {
                    let end = at + 1;
                    // The string must end there; UCL would cut what follows.
                    if end < self.len && !is_space(self.buf[end]) {
                        return None;
                    }
                    self.terminate(end);
                    return Some(start);
                }
                _ => {}
            }
            at += 1;
        }
        None
    }

    /// Any run of printable characters.
    fn symbol(&mut self) -> Option<usize> {
        self.skip_space();
        match self.peek() {
            Some(b) if b.is_ascii_graphic() || b >= 0x80 => {}
            _ => return None,
        }
        let start = self.pos;
        let end = self.token_end();
        self.terminate(end);
        Some(start)
    }

    /// A decimal integer (`strtol`'s form: an optional sign, digits), then
    /// a space or the end; the text is left as it was.
    fn integer(&mut self) -> Option<i64> {
        self.skip_space();
        let end = self.token_end();
        let text = std::str::from_utf8(&self.buf[self.pos..end]).ok()?;
        let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let value = text.parse::<i64>().ok()?;
        self.pos = end;
        Some(value)
    }

    /// A TimeStamp: milliseconds since 1970, digits only.
    fn timestamp(&mut self) -> Option<u64> {
        self.skip_space();
        let end = self.token_end();
        let text = std::str::from_utf8(&self.buf[self.pos..end]).ok()?;
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let ms = text.parse::<u64>().ok()?;
        self.terminate(end);
        Some(ms)
    }

    /// A finite number, then a space or the end; the text is left as it was.
    fn float(&mut self) -> Option<f64> {
        self.skip_space();
        let end = self.token_end();
        let text = std::str::from_utf8(&self.buf[self.pos..end]).ok()?;
        let value = text.parse::<f64>().ok().filter(|v| v.is_finite())?;
        self.pos = end;
        Some(value)
    }
}

/// Runs `f` over the parser `m`'s string; `None` if `m` is not live.
fn with_scan<T>(
    m: *mut MbusParser,
    what: &str,
    f: impl FnOnce(&mut Scan<'_>) -> Option<T>,
) -> Option<(T, *mut c_char)> {
    let Some(cursor) = PARSERS.get(m as usize) else {
        log(&format!(
            "{what}: {m:p} is not a live parser (NULL, never returned by mbus_parse_init, or used after mbus_parse_done)"
        ));
        return None;
    };
    let mut cursor = cursor.lock().unwrap_or_else(|p| p.into_inner());
    let (len, pos) = (cursor.len, cursor.pos);
    // SAFETY: mbus_parser.h's precondition: the string is still the one
    // given to mbus_parse_init, valid and ours to write into.
    let buf = unsafe { cursor.bytes() };
    let mut scan = Scan { buf, len, pos };
    let found = f(&mut scan);
    let new_pos = scan.pos;
    if found.is_some() {
        cursor.pos = new_pos;
    }
    found.map(|v| (v, cursor.pointer(0)))
}

/// Stores `value` through `out` if both are there; 1 if stored.
///
/// # Safety
///
/// `out` is NULL or valid for a write of `T`.
unsafe fn store<T>(out: *mut T, value: Option<T>, what: &str) -> c_int {
    match value {
        Some(_) if out.is_null() => {
            log(&format!("{what}: the result pointer is NULL"));
            0
        }
        Some(v) => {
            // SAFETY: the caller's promise above.
            unsafe { out.write(v) };
            1
        }
        None => 0,
    }
}

/// `mbus_parse_init`: a parser over `str` (NULL gives NULL).
///
/// # Safety
///
/// `str` is NULL or a NUL-terminated string that stays valid, and that
/// nobody else changes, until `mbus_parse_done`.
#[no_mangle]
pub unsafe extern "C" fn mbus_parse_init(str: *mut c_char) -> *mut MbusParser {
    guarded("mbus_parse_init", std::ptr::null_mut(), || {
        if str.is_null() {
            log("mbus_parse_init: the string is NULL");
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's promise above.
        let len = unsafe { libc::strlen(str) };
        let cursor = Cursor {
            base: str as usize,
            len,
            pos: 0,
        };
        match PARSERS.insert(Mutex::new(cursor)) {
            Some(token) => token as *mut MbusParser,
            None => {
                log("mbus_parse_init: no more parsers can be made in this process");
                std::ptr::null_mut()
            }
        }
    })
}

/// `mbus_parse_done`: ends the parser.
#[no_mangle]
pub extern "C" fn mbus_parse_done(m: *mut MbusParser) {
    guarded("mbus_parse_done", (), || {
        if PARSERS.remove(m as usize).is_none() {
            log(&format!("mbus_parse_done: {m:p} is not a live parser"));
        }
    })
}

/// The parse functions that hand back a pointer into the string.
fn pointer_parse(
    what: &str,
    m: *mut MbusParser,
    out: *mut *mut c_char,
    parse: impl FnOnce(&mut Scan<'_>) -> Option<usize>,
) -> c_int {
    guarded(what, 0, || {
        if out.is_null() {
            log(&format!("{what}: the result pointer is NULL"));
            return 0;
        }
        let found = with_scan(m, what, parse);
        let value = found.map(|(at, base)| base.wrapping_add(at));
        // SAFETY: `out` is not NULL, and valid for a write (the caller's
        // promise).
        unsafe { store(out, value, what) }
    })
}

/// `mbus_parse_lst`: the next value if it is a list; `*l` points at its
/// inside, whose closing parenthesis became a NUL.
///
/// # Safety
///
/// `l` is NULL or valid for a write; the parser's string is as
/// `mbus_parse_init` requires.
#[no_mangle]
pub unsafe extern "C" fn mbus_parse_lst(m: *mut MbusParser, l: *mut *mut c_char) -> c_int {
    pointer_parse("mbus_parse_lst", m, l, |s| s.list())
}

/// `mbus_parse_str`: the next value if it is a string; `*s` points at it
/// quoted, a NUL after the closing quote.
///
/// # Safety
///
/// As [`mbus_parse_lst`].
#[no_mangle]
pub unsafe extern "C" fn mbus_parse_str(m: *mut MbusParser, s: *mut *mut c_char) -> c_int {
    pointer_parse("mbus_parse_str", m, s, |scan| scan.string())
}

/// `mbus_parse_sym`: the next run of non-space characters, NUL-ended.
///
/// # Safety
///
/// As [`mbus_parse_lst`].
#[no_mangle]
pub unsafe extern "C" fn mbus_parse_sym(m: *mut MbusParser, s: *mut *mut c_char) -> c_int {
    pointer_parse("mbus_parse_sym", m, s, |scan| scan.symbol())
}

/// `mbus_parse_int`: the next value if it is an Integer that fits an
/// `int` (UCL aborts beyond; this returns 0).
///
/// # Safety
///
/// `i` is NULL or valid for a write; the parser's string is as
/// `mbus_parse_init` requires.
#[no_mangle]
pub unsafe extern "C" fn mbus_parse_int(m: *mut MbusParser, i: *mut c_int) -> c_int {
    guarded("mbus_parse_int", 0, || {
        if i.is_null() {
            log("mbus_parse_int: the result pointer is NULL");
            return 0;
        }
        let found = with_scan(m, "mbus_parse_int", |s| {
            let save = s.pos;
            let v = s.integer().and_then(|v| c_int::try_from(v).ok());
            if v.is_none() {
                s.pos = save;
            }
            v
        });
        // SAFETY: the caller's promise above.
        unsafe { store(i, found.map(|(v, _)| v), "mbus_parse_int") }
    })
}

/// `mbus_parse_ts`: the next value if it is a TimeStamp.
///
/// # Safety
///
/// `ts` is NULL or valid for a write; the parser's string is as
/// `mbus_parse_init` requires.
#[no_mangle]
pub unsafe extern "C" fn mbus_parse_ts(m: *mut MbusParser, ts: *mut libc::timeval) -> c_int {
    guarded("mbus_parse_ts", 0, || {
        if ts.is_null() {
            log("mbus_parse_ts: the result pointer is NULL");
            return 0;
        }
        let found = with_scan(m, "mbus_parse_ts", |s| s.timestamp());
        let value = found.and_then(|(ms, _)| {
            Some(libc::timeval {
                tv_sec: libc::time_t::try_from(ms / 1000).ok()?,
                tv_usec: ((ms % 1000) * 1000) as libc::suseconds_t,
            })
        });
        // SAFETY: the caller's promise above.
        unsafe { store(ts, value, "mbus_parse_ts") }
    })
}

/// `mbus_parse_flt`: the next value if it is a finite number.
///
/// # Safety
///
/// `d` is NULL or valid for a write; the parser's string is as
/// `mbus_parse_init` requires.
#[no_mangle]
pub unsafe extern "C" fn mbus_parse_flt(m: *mut MbusParser, d: *mut c_double) -> c_int {
    guarded("mbus_parse_flt", 0, || {
        if d.is_null() {
            log("mbus_parse_flt: the result pointer is NULL");
            return 0;
        }
        let found = with_scan(m, "mbus_parse_flt", |s| s.float());
        // SAFETY: the caller's promise above.
        unsafe { store(d, found.map(|(v, _)| v), "mbus_parse_flt") }
    })
}

/// The inside of the quoted string `s`, unescaped (`\n` is a line end,
/// any other `\X` is X); `None` if `s` is not one quoted string.
pub fn decode(s: &[u8]) -> Option<Vec<u8>> {
    let inner = s.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    let mut out = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => match bytes.next() {
                Some(b'n') => out.push(b'\n'),
                Some(&x) => out.push(x),
                // The closing quote was escaped: no closing quote.
                None => return None,
            },
            // An unescaped quote inside: not one string.
            b'"' => return None,
            _ => out.push(b),
        }
    }
    Some(out)
}

/// `s` quoted, with `\\`, `\"` and line ends escaped (RFC 3259 §5.3).
pub fn encode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    out.push(b'"');
    for &b in s {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
    out.push(b'"');
    out
}

/// `mbus_decode_str`: unquotes and unescapes `s` in place and returns it,
/// or NULL (leaving `s` alone) if it is not a quoted string (UCL asserts).
///
/// # Safety
///
/// `s` is NULL or a writable NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn mbus_decode_str(s: *mut c_char) -> *mut c_char {
    guarded("mbus_decode_str", std::ptr::null_mut(), || {
        // SAFETY: the caller's promise above.
        let bytes = match unsafe { guard::bytes(s, "the string") } {
            Ok(b) => b,
            Err(e) => {
                log(&format!("mbus_decode_str: {e}"));
                return std::ptr::null_mut();
            }
        };
        let Some(decoded) = decode(bytes) else {
            log("mbus_decode_str: not a quoted string (\"...\")");
            return std::ptr::null_mut();
        };
        // SAFETY: the decoded text is never longer than the string, which
        // is writable up to and including its NUL.
        unsafe {
            std::ptr::copy(decoded.as_ptr(), s.cast::<u8>(), decoded.len());
            *s.add(decoded.len()) = 0;
        }
        s
    })
}

/// `mbus_encode_str`: `s` quoted and escaped, from `malloc` (free it with
/// `xfree`); NULL for NULL.
///
/// # Safety
///
/// `s` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn mbus_encode_str(s: *const c_char) -> *mut c_char {
    guarded("mbus_encode_str", std::ptr::null_mut(), || {
        // SAFETY: the caller's promise above.
        match unsafe { guard::bytes(s, "the string") } {
            Ok(b) => guard::malloc_string(&encode(b)),
            Err(e) => {
                log(&format!("mbus_encode_str: {e}"));
                std::ptr::null_mut()
            }
        }
    })
}

/// `xfree` (UCL's `memory.h`): frees what this library returned from
/// `malloc` (`mbus_encode_str`, the rendezvous functions); NULL is fine.
///
/// # Safety
///
/// `p` is NULL or came from `malloc` and was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn xfree(p: *mut c_void) {
    // SAFETY: the caller's promise above.
    unsafe { libc::free(p) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_and_malformed_ones_are_refused() {
        for s in [&b"plain"[..], b"a \"quoted\" \\ back\nline", b""] {
            assert_eq!(decode(&encode(s)).as_deref(), Some(s));
        }
        assert_eq!(decode(b"\"a\\ b\"").as_deref(), Some(&b"a b"[..]));
        for bad in [&b"x"[..], b"\"", b"\"abc\\\"", b"\"a\"b\"", b"abc\""] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
