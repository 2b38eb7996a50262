"""What goes wrong: a callback that raises, bad input, a closed entity, a
message nobody acknowledges, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import mbus

from conftest import pump


def test_a_callback_that_raises_does_not_kill_the_entity(bus_config):
    a = mbus.Guides("app:test module:a")
    b = mbus.Guides("app:test module:b")
    errors, got = [], []

    def broken(msg):
        raise ZeroDivisionError("the callback's own bug")

    a.addCallback("test.x", broken)
    a.addCallback("test.y", got.append)
    a.signal_connect("error", errors.append)

    def failing_rpc(rpc):
        raise KeyError("no such thing")

    a.addRPCCallback("test.rpc", failing_rpc)
    pump([a, b], lambda: b._bus.matches("(module:a)") == 1, "a")
    b.sendReliable(a.address, "test.x", [])
    b.sendReliable(a.address, "test.y", [1])
    returns = []
    b.sendRPC(a.address, "test.rpc", [], returns.append)
    pump([a, b], lambda: got and returns and len(errors) == 2, "the later command and the RPC's return")
    assert isinstance(errors[0], ZeroDivisionError)
    assert isinstance(errors[1], KeyError)
    assert returns[0].success is False and returns[0].result == "EXCEPTION"
    assert "KeyError" in returns[0].description
    a.close()
    b.close()


def test_bad_input_raises_clear_exceptions(bus_config):
    with pytest.raises(ValueError, match="tag:value"):
        mbus.MAddress("app:test module")
    with pytest.raises(ValueError, match="parentheses"):
        mbus.MAddress("(app:test")
    with pytest.raises(ValueError, match="not an Mbus Symbol"):
        mbus.MSymbol("1abc")
    with pytest.raises(ValueError, match="not a command name"):
        mbus.MCommand("no spaces")
    with pytest.raises(TypeError, match="MData holds bytes"):
        mbus.MData(5)
    e = mbus.Entity("app:test module:bad")
    with pytest.raises(TypeError, match="arguments are a list"):
        e.send(mbus.MAddress("app:x"), "test.x", 5)
    with pytest.raises(TypeError, match="not an Mbus value"):
        e.send(mbus.MAddress("app:x"), "test.x", [object()])
    with pytest.raises(TypeError, match="no boolean"):
        e.send(mbus.MAddress("app:x"), "test.x", [True])
    with pytest.raises(TypeError, match=r"send\(msg\)"):
        e.send("just one string")
    with pytest.raises(mbus.MError, match="not a known entity"):
        e.sendReliable(mbus.MAddress("app:nobody"), "test.x", [])
    with pytest.raises(ValueError, match="no signal"):
        e.signal_connect("no-such-signal", print)
    e.close()
    with pytest.raises(ValueError, match="configuration"):
        mbus.Entity("app:test", config="/nonexistent/mbus.conf")


def test_a_closed_entity_and_what_callbacks_kept_raise(bus_config):
    a = mbus.Guides("app:test module:server")
    b = mbus.Guides("app:test module:client")
    kept = []

    def later(rpc):
        kept.append(mbus.RPCReturn(rpc))
        return None  # answered later, with sendRPCReturn

    a.addRPCCallback("test.later", later)
    pump([a, b], lambda: b._bus.matches("(module:server)") == 1, "the server")
    returns = []
    b.sendRPC(a.address, "test.later", [1], returns.append)
    pump([a, b], lambda: bool(kept), "the request")
    kept[0].arguments = [2]
    a.sendRPCReturn(kept[0])
    pump([a, b], lambda: bool(returns), "the late return")
    assert list(returns[0].arguments) == [2]

    b.sendRPC(a.address, "test.later", [1], returns.append)
    pump([a, b], lambda: len(kept) == 2, "the second request")
    a.close()
    assert a.closed
    with pytest.raises(mbus.MError, match="closed"):
        a.sendRPCReturn(kept[1])
    with pytest.raises(mbus.MError, match="closed"):
        a.send(b.address, "test.x", [])
    with pytest.raises(mbus.MError, match="closed"):
        a.step(0)
    with pytest.raises(mbus.MError, match="closed"):
        a.fileno()
    b.close()


def test_a_reliable_message_nobody_acknowledges_is_an_error_signal(join):
    rust = join()
    py = mbus.Entity("app:python module:sender")
    errors = []
    py.signal_connect("error", errors.append)
    pump([py], lambda: py._bus.matches("(app:rust)") == 1, "the Rust entity")
    rust.close()  # killed: it never acknowledges
    py.sendReliable(mbus.MAddress("app:rust"), "test.anyone", [])
    pump([py], lambda: bool(errors), "the error")
    assert isinstance(errors[0], mbus.MError)
    assert "test.anyone" in str(errors[0]) and "not acknowledged" in str(errors[0])
    py.close()


def test_ctrl_c_leaves_with_a_bye(join):
    rust = join()
    script = textwrap.dedent("""
        import sys, mbus
        entity = mbus.Entity("app:python module:interrupted")
        print("running", flush=True)
        entity.run()
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "running"
        rust.expect(lambda e: e["event"] == "joined" and "interrupted" in e["address"], "joined")
        child.send_signal(signal.SIGINT)
        lost = rust.expect(lambda e: e["event"] == "lost" and "interrupted" in e["address"], "lost")
        assert lost["reason"] == "bye"
        _, err = child.communicate(timeout=20)
        assert child.returncode != 0 and "KeyboardInterrupt" in err
    finally:
        if child.poll() is None:
            child.kill()


def test_an_entity_used_from_another_thread_raises(bus_config):
    import threading

    e = mbus.Entity("app:test module:threaded")
    raised = []

    def other():
        try:
            e.step(0)
        except mbus.MError as x:
            raised.append(x)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert raised and "thread that made it" in str(raised[0])
    e.close()


def test_an_rpc_callback_that_returns_no_rpcreturn(bus_config):
    a = mbus.Guides("app:test module:a")
    b = mbus.Guides("app:test module:b")
    errors = []
    a.signal_connect("error", errors.append)
    a.addRPCCallback("test.bad", lambda rpc: True)
    pump([a, b], lambda: b._bus.matches("(module:a)") == 1, "a")
    returns = []
    b.sendRPC(a.address, "test.bad", [], returns.append)
    pump([a, b], lambda: bool(returns), "the return")
    assert returns[0].success is False and returns[0].result == "EXCEPTION"
    assert isinstance(errors[0], TypeError) and "RPCReturn" in str(errors[0])
    b.rpcTimeout = -1
    with pytest.raises(ValueError, match="rpcTimeout"):
        b.sendRPC(a.address, "test.bad", [])
    # An RPCReturn answers through the entity that received the RPC only.
    kept = []
    a.addRPCCallback("test.keep", lambda rpc: kept.append(mbus.RPCReturn(rpc)))
    b.rpcTimeout = 2000
    b.sendRPC(a.address, "test.keep", [])
    pump([a, b], lambda: bool(kept), "the request")
    with pytest.raises(mbus.MError, match="another entity"):
        b.sendRPCReturn(kept[0])
    a.close()
    b.close()
