"""pyMbus's documented examples (its API section), ported to Python 3 only
where Python 3 needs it (print), printing what the documentation shows;
timestamps, sequence numbers, keys and digests aside."""

from __future__ import annotations

import re

import mbus

from conftest import pump


def test_data_types(capsys):
    i = 5
    f = 6.7
    s = "hello world"
    sym = mbus.MSymbol('HELLO_WORLD')
    data = mbus.MData('\007\034\043')
    lst = mbus.MList([i, 5, f, [s, sym, data]])

    print('MSymbol.__str__:', sym)
    print('MData.__str__:', data)
    print('MList.__str__:', lst)
    assert capsys.readouterr().out == (
        "MSymbol.__str__: HELLO_WORLD\n"
        "MData.__str__: <Bxwj>\n"
        'MList.__str__: (5 5 6.700000 ("hello world" HELLO_WORLD <Bxwj> ) )\n')


def test_address(capsys):
    addr1 = mbus.MAddress("app:test1 module:address1")
    addr2 = mbus.MAddress()
    addr2['app'] = 'test2'
    addr2['module'] = 'address2'

    print('Address 1:', addr1)
    print('Address 2:', addr2)
    assert capsys.readouterr().out == (
        "Address 1: app:test1 module:address1\nAddress 2: app:test2 module:address2\n")


def test_header(capsys):
    header = mbus.MHeader(mbus.MAddress("app:test module:header-test1"))
    header.source = mbus.MAddress("app:test module:header-test2")
    header.reliable = True
    print("Header:", header)
    out = capsys.readouterr().out
    assert re.fullmatch(
        r"Header: mbus/1\.0 \d+ \d+ R \(app:test module:header-test2\) "
        r"\(app:test module:header-test1\) \(\)\n", out), out


def test_command(capsys):
    cmd = mbus.MCommand('desktop.configuration.notify')
    cmd.args.append(mbus.MSymbol('gex/panel/plugin/gxnet/interfaces'))
    cmd.args.append(['eth0', 'eth1', 'tun0'])
    print('Command:', cmd)
    out = capsys.readouterr().out
    # The documentation prints this list "( "eth0" … )" here and
    # '("eth0" … )' under MMessage; we print lists one way, as MList does.
    assert out == ('Command: desktop.configuration.notify '
                   '(gex/panel/plugin/gxnet/interfaces ("eth0" "eth1" "tun0" ) )\n')


def test_message(capsys):
    msg = mbus.MMessage("app:test module:message-test1", hashkey='Y2eAxOs7XWLxrby6')
    msg.header.source = mbus.MAddress("app:test module:message-test2")
    cmd = mbus.MCommand('desktop.configuration.notify')
    cmd.args.append(mbus.MSymbol('gex/panel/plugin/gxnet/interfaces'))
    cmd.args.append(['eth0', 'eth1', 'tun0'])
    msg.payload.append(cmd)

    print('Message:\n%s' % msg)
    out = capsys.readouterr().out
    assert re.fullmatch(
        r"Message:\n[A-Za-z0-9+/]{16}\n"
        r"mbus/1\.0 \d+ \d+ U \(app:test module:message-test2\) \(app:test module:message-test1\) \(\)\n"
        r'desktop\.configuration\.notify \(gex/panel/plugin/gxnet/interfaces \("eth0" "eth1" "tun0" \) \)\n',
        out), out


def test_entity_signals_callbacks_and_both_ways_to_send(bus_config, capsys):
    entity = mbus.Entity("app:test module:entity")

    def _new_entity(addr):
        print('new entity', addr)

    entity.signal_connect('new-entity', _new_entity)

    def _lost_entity(addr):
        print('lost entity', addr)

    entity.signal_connect('lost-entity', _lost_entity)

    def _unknown_message(msg):
        print('unknown message', msg)

    def _transport_error(error):
        print('transport error', error)

    entity.signal_connect('unknown-message', _unknown_message)
    entity.signal_connect('error', _transport_error)

    def _desktop_conf_notify(msg):
        print('received', msg.current_command)

    entity.addCallback("desktop.configuration.notify", _desktop_conf_notify)

    # The other side of the examples: the entity they send to.
    doc = mbus.Entity("app:test module:doc")
    received = []
    doc.addCallback("desktop.configuration.notify", lambda msg: received.append(msg))
    pump([entity, doc], lambda: "new entity" in capsys.readouterr().out or False, "new-entity")

    # send a Mbus message object
    msg = mbus.Message(mbus.MAddress("app:test module:doc"))
    cmd = mbus.MCommand("desktop.configuration.notify")
    # (The documentation appends an MCommand here, a slip: it is no Mbus
    # value. Its second variant, which "does the same", has this Symbol.)
    cmd.args.append(mbus.Symbol('gex.panel.plugin.gxnet.interfaces'))
    cmd.args.append(["eth0", "eth1", "tun0"])
    msg.payload.append(cmd)
    entity.send(msg)

    # send a command
    entity.send(mbus.MAddress("app:test module:doc"), "desktop.configuration.notify",
                [mbus.Symbol('gex.panel.plugin.gxnet.interfaces'), ["eth0", "eth1", "tun0"]])

    pump([entity, doc], lambda: len(received) == 2, "both messages")
    for m in received:
        assert str(m.current_command) == (
            'desktop.configuration.notify (gex.panel.plugin.gxnet.interfaces ("eth0" "eth1" "tun0" ) )')
        assert m.header.source["module"] == "entity"

    # And the entity's own callback, sent from the doc entity reliably.
    doc.sendReliable(entity.address, "desktop.configuration.notify", [mbus.MSymbol("x"), [1, 2.5]])
    doc.send(entity.address, "desktop.other", ["nobody takes this"])
    seen = []
    pump([entity, doc], lambda: (seen.append(capsys.readouterr().out) or
                                 "unknown message" in "".join(seen)), "the callbacks")
    out = "".join(seen)
    assert "received desktop.configuration.notify (x (1 2.500000 ) )" in out
    assert 'desktop.other ("nobody takes this" )' in out
    doc.close()
    pump([entity], lambda: (seen.append(capsys.readouterr().out) or
                            "lost entity" in "".join(seen)), "lost-entity")
    assert "lost entity app:test module:doc id:" in "".join(seen)
    entity.close()


def test_guides_rpc_callbacks_and_send_rpc(bus_config, capsys):
    server = mbus.Guides(mbus.MAddress("app:server module:rpc"))
    entity = mbus.Guides(mbus.MAddress("app:test module:guides"))

    def _mbus_rpc_command(rpc):
        ret = mbus.RPCReturn(rpc)

        if rpc.arguments[0] == 'GOOD':
            # return parameters
            ret.arguments = ['FINE']
            # status information
            ret.success = True
            ret.result = 'SUCCESS'
            ret.description = 'No problems, everyhthing worked fine'
        else:
            # return parameters
            ret.arguments = []
            # status information
            ret.success = False
            ret.result = 'ERROR_NO_GOOD'
            ret.description = 'Oops, something very bad has happened'
        print('received an RPC', rpc)
        return ret

    server.addRPCCallback('desktop.configuration.set', _mbus_rpc_command)

    returns = []

    def _rpc_config_set(ret):
        if ret.success:
            print('variable is set to the new value')
        returns.append(ret)
        return True

    entity.sendRPC(mbus.MAddress("app:server module:rpc"), 'desktop.configuration.set',
                   ['/desktop/gex/panel/type', 'CORNER'], _rpc_config_set)
    entity.sendRPC(mbus.MAddress("app:server module:rpc"), 'desktop.configuration.set',
                   ['GOOD'], _rpc_config_set)
    pump([server, entity], lambda: len(returns) == 2, "two RPC returns")
    out = capsys.readouterr().out
    assert 'received an RPC desktop.configuration.set ("/desktop/gex/panel/type" "CORNER" )' in out
    assert out.count('variable is set to the new value') == 1
    bad, good = sorted(returns, key=lambda r: r.success)
    assert (bad.success, bad.result, bad.description, list(bad.arguments)) == (
        False, 'ERROR_NO_GOOD', 'Oops, something very bad has happened', [])
    assert (good.success, good.result, list(good.arguments)) == (True, 'SUCCESS', ['FINE'])
    assert good.source["module"] == "rpc"
    server.close()
    entity.close()
