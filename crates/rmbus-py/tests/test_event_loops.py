"""The entity in the program's own loop: asyncio (attach, await call, a
late answer), and selectors with fileno() and timeout()."""

from __future__ import annotations

import asyncio
import selectors
import time

import mbus

from conftest import DEADLINE, pump


def test_asyncio_await_call_and_a_late_answer(bus_config):
    async def main():
        server = mbus.Guides("app:test module:server")
        client = mbus.Guides("app:test module:client")
        server.attach()
        client.attach()
        loop = asyncio.get_running_loop()
        thread_ok = []

        def add(rpc):
            thread_ok.append(asyncio.get_running_loop() is loop)
            ret = mbus.RPCReturn(rpc)
            ret.arguments = [sum(rpc.arguments)]
            return ret

        def slow(rpc):
            ret = mbus.RPCReturn(rpc)
            ret.arguments = ["late"]
            loop.call_later(0.2, server.sendRPCReturn, ret)
            return None

        server.addRPCCallback("math.add", add)
        server.addRPCCallback("math.slow", slow)
        joined = loop.create_future()
        client.signal_connect("new-entity", lambda a: joined.done() or joined.set_result(a))
        await asyncio.wait_for(joined, 20)
        ret = await asyncio.wait_for(client.call(server.address, "math.add", [2, 3]), 20)
        assert ret.success and list(ret.arguments) == [5]
        late = await asyncio.wait_for(client.call(server.address, "math.slow"), 20)
        assert list(late.arguments) == ["late"]
        assert thread_ok == [True]
        server.close()
        client.close()

    asyncio.run(main())


def test_selectors_with_fileno_and_timeout(bus_config):
    a = mbus.Entity("app:test module:a")
    b = mbus.Entity("app:test module:b")
    got = []
    a.addCallback("test.ping", got.append)
    sel = selectors.DefaultSelector()
    sel.register(a.fileno(), selectors.EVENT_READ, a)
    sel.register(b.fileno(), selectors.EVENT_READ, b)
    pump([a, b], lambda: b._bus.matches("(module:a)") == 1, "a")
    b.sendReliable(a.address, "test.ping", [1])
    until = time.monotonic() + DEADLINE
    while not got and time.monotonic() < until:
        timeouts = [t for t in (a.timeout(), b.timeout()) if t is not None]
        for key, _ in sel.select(min(timeouts + [0.1])):
            key.data.step(0)
        for e in (a, b):
            if e.timeout() == 0.0:
                e.step(0)
    assert got and list(got[0].current_command.args) == [1]
    assert a.deadline() is None or a.deadline() > 0
    sel.close()
    a.close()
    b.close()


def test_asyncio_goes_on_after_a_raising_callback_and_a_closed_loop(bus_config):
    server = mbus.Guides("app:test module:server")
    client = mbus.Guides("app:test module:client")
    errors = []
    server.signal_connect("error", errors.append)

    def broken(msg):
        raise RuntimeError("the callback's bug")

    def add(rpc):
        ret = mbus.RPCReturn(rpc)
        ret.arguments = [sum(rpc.arguments)]
        return ret

    server.addCallback("test.broken", broken)
    server.addRPCCallback("math.add", add)

    async def main():
        server.attach()
        client.attach()
        client.rpcTimeout = 10000
        first = await asyncio.wait_for(client.call(server.address, "math.add", [1, 2]), 20)
        client.sendReliable(server.address, "test.broken", [])
        # The timers and the reader still work after the callback raised.
        second = await asyncio.wait_for(client.call(server.address, "math.add", [3, 4]), 20)
        return first, second

    first, second = asyncio.run(main())
    assert list(first.arguments) == [3] and list(second.arguments) == [7]
    assert any(isinstance(e, RuntimeError) for e in errors)
    # That loop is closed now; the entities go on in a plain loop.
    returns = []
    client.sendRPC(server.address, "math.add", [5, 6], returns.append)
    pump([server, client], lambda: bool(returns), "a return after the loop closed")
    assert list(returns[0].arguments) == [11]
    server.close()
    client.close()


def test_closing_ends_open_calls_and_a_handler_may_close(bus_config):
    server = mbus.Guides("app:test module:server")
    client = mbus.Guides("app:test module:client")
    held = []
    server.addRPCCallback("test.hold", held.append)  # kept, never answered
    pump([server, client], lambda: client._bus.matches("(module:server)") == 1, "the server")
    returns = []
    client.sendRPC(server.address, "test.hold", [], returns.append)
    pump([server, client], lambda: bool(held), "the request at the server")

    async def waiting():
        client.rpcTimeout = 10000
        task = asyncio.ensure_future(client.call(server.address, "test.hold"))
        await asyncio.sleep(0)
        client.close()
        return await asyncio.wait_for(task, 20)

    awaited = asyncio.run(waiting())
    # "closed", or "undeliverable" when the close came before the request's
    # acknowledgement: either way the await ends, not OK.
    ended = ("closed", "undeliverable")
    assert awaited.outcome in ended and awaited.success is False, awaited.outcome
    assert awaited.result == awaited.outcome.upper()
    assert len(returns) == 1 and returns[0].outcome in ended
    client.close()  # again: nothing

    # A handler that closes the entity: step() returns, nothing escapes.
    watcher = mbus.Entity("app:test module:watcher")
    watcher.signal_connect("new-entity", lambda a: watcher.close())
    other = mbus.Entity("app:test module:other")
    pump([watcher, other], lambda: watcher.closed, "the handler's close")
    assert watcher.closed
    other.close()
    server.close()
