"""The entity in the program's own loop: asyncio (attach, await call, a
late answer), and selectors with fileno() and timeout()."""

from __future__ import annotations

import asyncio
import selectors

import mbus

from conftest import pump


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
    for _ in range(500):
        if got:
            break
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
