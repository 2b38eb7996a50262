"""A Python entity and a Rust entity (`rmbus join`) exchange reliable
commands and RPCs both ways."""

from __future__ import annotations

import mbus

from conftest import pump


def test_reliable_commands_both_ways(join):
    rust = join()
    py = mbus.Entity("app:python module:interop")
    got = []
    errors = []
    py.addCallback("test.from-rust", got.append)
    py.signal_connect("error", errors.append)
    rust.expect(lambda e: e["event"] == "joined" and "app:python" in e["address"], "joined", [py])
    pump([py], lambda: py._bus.matches("(app:rust)") == 1, "the Rust entity")

    # Python to Rust, reliably: the Rust side has it, acknowledged.
    py.sendReliable(mbus.MAddress(rust.address), "test.from-python",
                    [1, 2.5, "text", mbus.MSymbol("SYM"), mbus.MData(b"\x00\x01"), [1, [2]]])
    cmd = rust.expect(lambda e: e["event"] == "command" and e["name"] == "test.from-python",
                      "the command", [py])
    assert cmd["reliable"] is True
    assert cmd["src"] == str(py.address.mbus())
    assert len(cmd["args"]) == 6

    # Rust to Python, reliably: the callback has it, the Rust side is told.
    rust.say(f'rsend {py.address.mbus()} test.from-rust (42 "x y" SYM (1 2))')
    pump([py], lambda: bool(got), "the Rust entity's command")
    msg = got[0]
    assert msg.header.reliable
    assert list(msg.current_command.args) == [42, "x y", mbus.MSymbol("SYM"), [1, 2]]
    assert isinstance(msg.current_command.args[2], mbus.MSymbol)
    assert msg.header.source.matches(mbus.MAddress(rust.address))
    rust.expect(lambda e: e["event"] == "delivered", "delivered", [py])
    assert errors == []
    py.close()


def test_rpcs_both_ways(join):
    rust = join()
    py = mbus.Guides("app:python module:rpc")

    def add(rpc):
        ret = mbus.RPCReturn(rpc)
        ret.result = "SUM"
        ret.description = "added"
        ret.arguments = [sum(rpc.arguments)]
        return ret

    py.addRPCCallback("math.add", add)
    rust.expect(lambda e: e["event"] == "joined" and "app:python" in e["address"], "joined", [py])

    # Rust calls Python.
    rust.say(f"call {py.address.mbus()} math.add (2 3 4)")
    ret = rust.expect(lambda e: e["event"] == "returned", "the return", [py])
    assert ret["outcome"] == "ok", ret
    assert ret["result"] == "SUM" and ret["description"] == "added"

    # Python calls Rust; the join script answers its request.
    returns = []
    py.sendRPC(mbus.MAddress(rust.address), "rust.echo", ["hello", 7], returns.append)
    req = rust.expect(lambda e: e["event"] == "request" and e["name"] == "rust.echo", "the request", [py])
    rust.say(f'return #{req["request"]} OK ECHOED "from rust" ("hello" 7)')
    pump([py], lambda: bool(returns), "the Rust return")
    r = returns[0]
    assert (r.success, r.result, r.description, list(r.arguments)) == (True, "ECHOED", "from rust", ["hello", 7])
    assert r.source.matches(mbus.MAddress(rust.address))

    # An operation the Python side does not serve: UNKNOWN, as rmbus answers.
    rust.say(f"call {py.address.mbus()} math.nothing ()")
    unknown = rust.expect(lambda e: e["event"] == "returned" and e.get("outcome") != "ok",
                          "UNKNOWN", [py])
    assert unknown["outcome"] == "unknown", unknown
    py.close()


def test_huge_integers_rendezvous_commands_and_pymbus_hooks(join):
    rust = join()
    py = mbus.Entity("app:python module:hooks")
    joined, got = [], []
    py.newEntityFunction = joined.append
    py.addCallback("test.big", got.append)
    py.addCallback("mbus.go", got.append)
    pump([py], lambda: bool(joined), "newEntityFunction")
    assert joined[0].matches(mbus.MAddress(rust.address))
    assert py.isAddressedTo("app:python") and not py.isAddressedTo("app:other")
    big = "9" * 5000
    rust.say(f"rsend {py.address.mbus()} test.big ({big})")
    rust.say(f"go {py.address.mbus()} ready")
    pump([py], lambda: len(got) == 2, "the big integer and mbus.go")
    by_name = {m.current_command.name: m for m in got}
    assert by_name["test.big"].current_command.args[0] == 10 ** 5000 - 1
    assert str(by_name["test.big"].current_command).startswith("test.big (99999")
    assert list(by_name["mbus.go"].current_command.args) == ["ready"]
    py.close()


def test_integers_longer_than_pythons_string_limit_both_ways(join):
    from mbus.types import _int_text, _text_int

    for v in (0, -5, 10 ** 4000, -(10 ** 9000) - 7, 10 ** 12345 + 1):
        assert _text_int(_int_text(v)) == v
    rust = join()
    py = mbus.Entity("app:python module:big")
    pump([py], lambda: py._bus.matches("(app:rust)") == 1, "the Rust entity")
    py.sendReliable(mbus.MAddress(rust.address), "test.big", [-(10 ** 6000)])
    cmd = rust.expect(lambda e: e["event"] == "command" and e["name"] == "test.big", "the command", [py])
    assert "1" + "0" * 6000 in str(cmd["args"])
    py.close()
