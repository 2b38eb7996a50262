//! `rmbus member --exec PROGRAM [ARG…]`: the execute handler that runs a
//! program, never through a shell: the content on its stdin, its stdout (at
//! most [`OUTPUT_LIMIT`] bytes) as the result, killed at the execute
//! timeout. Output that is JSON is the result as is; other output is a JSON
//! string. A program that exits non-zero fails the execution.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The most output kept from the program.
pub const OUTPUT_LIMIT: usize = 1 << 20;

/// The execute handler that runs `program` for each job, killed after
/// `timeout` (`--exec PROGRAM [ARG…]` of `member` and `gateway`).
pub fn handler(program: Vec<String>, timeout: Duration) -> rmbus::runtime::ExecHandler {
    std::sync::Arc::new(move |job: &rmbus::cmbs::ExecJob| {
        run(&program, &job.message.content.to_bytes(), timeout)
    })
}

/// Runs `program` with `input` on stdin.
pub fn run(
    program: &[String],
    input: &[u8],
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    let (name, args) = program.split_first().ok_or("no program to run")?;
    let mut child = Command::new(name)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{name}: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stdout)
            .take(OUTPUT_LIMIT as u64 + 1)
            .read_to_end(&mut out);
        // Drain the rest so the program is not blocked on a full pipe.
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        out
    });
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let err_reader = std::thread::spawn(move || {
        let mut e = Vec::new();
        let _ = (&mut stderr).take(4096).read_to_end(&mut e);
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        e
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{name} took longer than {} s and was killed",
                    timeout.as_secs_f64()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("{name}: {e}")),
        }
    };
    let _ = writer.join();
    let out = reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        let first = String::from_utf8_lossy(&err);
        let first = first.lines().next().unwrap_or("").trim();
        return Err(format!(
            "{name} ended with {status}{}{first}",
            if first.is_empty() { "" } else { ": " }
        ));
    }
    if out.len() > OUTPUT_LIMIT {
        return Err(format!("{name} wrote more than {OUTPUT_LIMIT} bytes"));
    }
    let text = String::from_utf8_lossy(&out);
    let trimmed = text.trim_end_matches(['\n', '\r']);
    Ok(serde_json::from_str(trimmed)
        .unwrap_or_else(|_| serde_json::Value::String(trimmed.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_reads_the_content_and_its_output_is_the_result() {
        let cat = vec!["cat".to_string()];
        assert_eq!(
            run(&cat, b"{\"a\":1}\n", Duration::from_secs(10)).unwrap(),
            serde_json::json!({"a": 1})
        );
        assert_eq!(
            run(&cat, b"plain text", Duration::from_secs(10)).unwrap(),
            serde_json::json!("plain text")
        );
        let fail = vec!["sh".into(), "-c".into(), "echo nope >&2; exit 3".into()];
        let e = run(&fail, b"", Duration::from_secs(10)).unwrap_err();
        assert!(e.contains("nope"), "{e}");
        let big = vec![
            "head".into(),
            "-c".into(),
            "1100000".into(),
            "/dev/zero".into(),
        ];
        let e = run(&big, b"", Duration::from_secs(10)).unwrap_err();
        assert!(e.contains("more than"), "{e}");
        let slow = vec!["sleep".into(), "30".into()];
        let e = run(&slow, b"", Duration::from_millis(200)).unwrap_err();
        assert!(e.contains("killed"), "{e}");
        assert!(run(&["/nonexistent/x".to_string()], b"", Duration::from_secs(1)).is_err());
    }
}
