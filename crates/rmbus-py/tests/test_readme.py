"""The README's "From Python" examples, run as written: the pyMbus-style
program (its `rmbus send` and `rmbus call` lines against it, then Ctrl-C)
and the asyncio client."""

from __future__ import annotations

import os
import queue
import re
import threading
import signal
import subprocess
import sys

from conftest import REPO, rmbus_bin


def python_blocks():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## From Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def read_line(child, within):
    """The child's next stdout line, or a failure after `within` seconds."""
    lines = queue.Queue()
    threading.Thread(target=lambda: lines.put(child.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=within)
    except queue.Empty:
        raise AssertionError(f"the program printed nothing within {within} s") from None


def test_the_readme_examples_run_as_written(join):
    program, client = python_blocks()
    watcher = join("(app:test module:watcher)")
    child = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        watcher.expect(lambda e: e["event"] == "joined" and "app:demo" in e["address"], "the program")
        sent = subprocess.run(
            [rmbus_bin(), "send", "--to", "(app:demo module:python)", "--reliable", "demo.note", "(1 2)"],
            capture_output=True, text=True, timeout=30)
        assert sent.returncode == 0, sent.stderr
        line = read_line(child, 30)
        assert line.startswith("note from app:rmbus id:") and line.rstrip().endswith("(1 2 )"), line
        called = subprocess.run(
            [rmbus_bin(), "call", "--json", "(app:demo module:python)", "demo.add", "(2 3)"],
            capture_output=True, text=True, timeout=30)
        assert called.returncode == 0 and '"outcome":"ok"' in called.stdout, called
        asyncio_client = subprocess.run([sys.executable, "-c", client], capture_output=True,
                                        text=True, timeout=60, env=os.environ.copy())
        assert asyncio_client.stdout == "True [5]\n", asyncio_client
        child.send_signal(signal.SIGINT)
        lost = watcher.expect(lambda e: e["event"] == "lost" and "app:demo" in e["address"], "the bye")
        assert lost["reason"] == "bye"
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
