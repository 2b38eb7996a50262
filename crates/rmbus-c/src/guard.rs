//! The FFI boundary's checks: panics caught, C strings read with bounds,
//! failures logged.

use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The longest string accepted from C, in bytes (an Mbus datagram is at
/// most 64 KiB, RFC 3259 §6).
pub const MAX_TEXT: usize = 65_536;

/// Runs `f`; a panic inside it is logged and becomes `fallback` instead of
/// unwinding into C (which would be undefined behaviour).
pub fn guarded<T>(what: &str, fallback: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            log(&format!("{what}: internal error ({why}); please report it"));
            fallback
        }
    }
}

/// Writes `rmbus: LINE` on stderr (how the functions that return `void`
/// say why they failed; `RMBUS_C_QUIET=1` silences it). A stderr that
/// cannot be written (closed, a broken pipe) loses the line, nothing more.
pub fn log(line: &str) {
    if std::env::var_os("RMBUS_C_QUIET").is_none_or(|v| v != "1") {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "rmbus: {line}");
    }
}

/// Which function a thread's copy of an error text is for: each keeps
/// its own, valid until that function's next call on the thread.
#[derive(Clone, Copy)]
pub enum Slot {
    /// `mbus_last_error`.
    Ucl,
    /// `rmbus_error`.
    Native,
}

thread_local! {
    /// The last error texts handed to C on this thread, one per function.
    static HANDED: std::cell::RefCell<[CString; 2]> =
        std::cell::RefCell::new([CString::default(), CString::default()]);
}

/// Keeps `text` for the calling thread and returns it for C: valid until
/// this thread's next call of the same function (how `mbus_last_error`
/// and `rmbus_error` stay valid whatever other threads do). During the
/// thread's teardown, an empty static string.
pub fn thread_copy(slot: Slot, text: CString) -> *const c_char {
    HANDED
        .try_with(|h| {
            let mut h = h.borrow_mut();
            let kept = &mut h[slot as usize];
            *kept = text;
            kept.as_ptr()
        })
        .unwrap_or(c"".as_ptr())
}

/// The UTF-8 text of the C string `p`, named `what` in errors.
///
/// # Safety
///
/// `p` is NULL or points to a NUL-terminated string that stays valid for
/// `'a`.
pub unsafe fn text<'a>(p: *const c_char, what: &str) -> Result<&'a str, String> {
    let bytes = unsafe { bytes(p, what)? };
    std::str::from_utf8(bytes).map_err(|e| format!("{what}: not UTF-8 ({e})"))
}

/// The bytes of the C string `p` (without its NUL), named `what` in errors.
///
/// # Safety
///
/// As [`text`].
pub unsafe fn bytes<'a>(p: *const c_char, what: &str) -> Result<&'a [u8], String> {
    if p.is_null() {
        return Err(format!("{what}: NULL where a string is needed"));
    }
    // SAFETY: the caller promises a NUL-terminated string (the documented
    // precondition of every function taking one).
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    if bytes.len() > MAX_TEXT {
        return Err(format!(
            "{what}: {} bytes long; at most {MAX_TEXT} are accepted",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// `s` in memory from `malloc`, NUL-terminated, for the caller to free
/// with `free` (or UCL's `xfree`); NULL if memory is short.
pub fn malloc_string(s: &[u8]) -> *mut c_char {
    // SAFETY: malloc of len + 1 bytes, then exactly that many written.
    unsafe {
        let p = libc::malloc(s.len() + 1).cast::<u8>();
        if p.is_null() {
            return std::ptr::null_mut();
        }
        std::ptr::copy_nonoverlapping(s.as_ptr(), p, s.len());
        *p.add(s.len()) = 0;
        p.cast()
    }
}

/// `s` as a NUL-terminated buffer that C may write into (UCL's handlers
/// take `char *` and parse their arguments in place); a NUL inside `s`
/// (which no Mbus text holds) ends the string early.
pub fn c_buffer(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_fallback() {
        assert_eq!(guarded("test", 7, || panic!("boom")), 7);
        assert_eq!(guarded("test", 7, || 3), 3);
    }

    #[test]
    fn strings_are_checked() {
        assert!(unsafe { text(std::ptr::null(), "x") }
            .unwrap_err()
            .contains("NULL"));
        let bad = b"\xff\0";
        assert!(unsafe { text(bad.as_ptr().cast(), "x") }
            .unwrap_err()
            .contains("UTF-8"));
        let long = vec![b'a'; MAX_TEXT + 1]
            .into_iter()
            .chain([0])
            .collect::<Vec<u8>>();
        assert!(unsafe { text(long.as_ptr().cast(), "x") }
            .unwrap_err()
            .contains("at most"));
    }
}
