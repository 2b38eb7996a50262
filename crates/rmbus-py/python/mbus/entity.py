"""Entity and Guides: pyMbus's bus entity and its Mbus Guidelines RPC, on
rmbus's core (mbus._native).

The loop belongs to the program: ``run()`` blocks (Ctrl-C says bye, then
raises KeyboardInterrupt), ``step(timeout)`` does one turn, and
``fileno()`` with ``timeout()``/``deadline()`` let asyncio, selectors, GLib
or Qt drive it (``attach()`` does it for asyncio). Callbacks and signals
run on the thread that drives the loop.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from . import _native
from .types import MAddress, MCommand, MError, MList, MMessage, format_value, from_tagged, to_tagged

__all__ = ["Entity", "MEntity", "Guides", "RPC", "RPCReturn"]

SIGNALS = ("new-entity", "lost-entity", "error", "unknown-message")


def _addr(a: Union[str, MAddress]) -> MAddress:
    if isinstance(a, MAddress):
        return a
    if isinstance(a, str):
        return MAddress(a)
    raise TypeError(f"an address is an MAddress or a str, not {type(a).__name__}")


def _args(args: Any) -> List[Any]:
    if not isinstance(args, (list, tuple)):
        raise TypeError(f"the arguments are a list (or tuple) of Mbus values, not {type(args).__name__}")
    return [to_tagged(a) for a in args]


class Entity:
    """An Mbus entity (pyMbus's MEntity): its address, signals, command
    callbacks, and send/sendReliable."""

    def __init__(self, address: Union[str, MAddress], config: Optional[str] = None) -> None:
        addr = _addr(address)
        try:
            self._bus = _native.Bus(addr.mbus(), config)
        except RuntimeError as e:
            raise MError(str(e)) from None
        self._thread = threading.get_ident()
        self.address = MAddress(self._b.address())
        self._signals: Dict[str, List[Callable[..., Any]]] = {s: [] for s in SIGNALS}
        self._callbacks: Dict[str, List[Callable[[MMessage], Any]]] = {}
        self._sent: Dict[int, str] = {}
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._timer: Optional[asyncio.TimerHandle] = None
        #: Called with the MAddress of each entity that joins (as the
        #: "new-entity" signal; the hook some pyMbus programs set).
        self.newEntityFunction: Optional[Callable[[MAddress], Any]] = None
        #: Called with the MAddress of each entity that leaves.
        self.lostEntityFunction: Optional[Callable[[MAddress], Any]] = None

    def isAddressedTo(self, address: Union[str, MAddress]) -> bool:
        """True if a message to ``address`` reaches this entity (every
        element of ``address`` is one of ours, RFC 3259 §5.1)."""
        return _addr(address).matches(self.address)

    @property
    def _b(self) -> "_native.Bus":
        """The core, from the thread that made the entity (the one that
        drives its loop and runs its callbacks)."""
        if threading.get_ident() != self._thread:
            raise MError("an entity is used from the thread that made it, which drives its loop"
                         " and runs its callbacks")
        return self._bus

    # ---- registration -----------------------------------------------------

    def signal_connect(self, signal: str, function: Callable[..., Any]) -> None:
        """Calls ``function`` on ``signal``: "new-entity" and "lost-entity"
        (with the MAddress), "error" (with the exception: a callback that
        raised, a reliable message not acknowledged), "unknown-message"
        (with the MMessage of a command no callback takes)."""
        if signal not in self._signals:
            raise ValueError(f"no signal {signal!r}; there are {', '.join(SIGNALS)}")
        self._signals[signal].append(function)

    def signal_disconnect(self, signal: str, function: Callable[..., Any]) -> None:
        """Stops calling ``function`` on ``signal``."""
        self._signals.get(signal, []).remove(function)

    def addCallback(self, command: str, function: Callable[[MMessage], Any]) -> None:
        """Calls ``function(msg)`` for each received command named
        ``command`` (``msg.current_command`` is it)."""
        MCommand(command)  # checks the name
        self._callbacks.setdefault(command, []).append(function)

    def removeCallback(self, command: str, function: Callable[[MMessage], Any]) -> None:
        """Stops calling ``function`` for ``command``."""
        self._callbacks.get(command, []).remove(function)

    # ---- sending ----------------------------------------------------------

    def send(self, *args: Any) -> None:
        """``send(msg)`` with an MMessage (reliably if its header says so), or
        ``send(address, command_name, arguments)``."""
        self._send(args, False)

    def sendReliable(self, *args: Any) -> None:
        """As send, reliably: the receiver acknowledges; a message not
        acknowledged is an "error" signal (MError)."""
        self._send(args, True)

    def _send(self, args: Sequence[Any], reliable: bool) -> None:
        if len(args) == 1 and isinstance(args[0], MMessage):
            msg = args[0]
            dst = msg.header.destination
            commands = [[c.name, _args(c.args)] for c in msg.payload]
            reliable = reliable or msg.header.reliable
        elif len(args) == 3:
            dst = _addr(args[0])
            MCommand(args[1])
            commands = [[args[1], _args(args[2])]]
        else:
            raise TypeError("send(msg) or send(address, command, arguments)")
        try:
            sent = self._b.send(_addr(dst).mbus(), json.dumps(commands), reliable)
        except (LookupError, RuntimeError) as e:
            raise MError(str(e)) from None
        if sent is not None:
            self._sent[sent] = f"{commands[0][0]} to {_addr(dst)}"
        self._wake()

    # ---- the loop ---------------------------------------------------------

    def fileno(self) -> int:
        """The descriptor that is readable while datagrams wait."""
        return self._guard(self._b.fileno)

    def timeout(self) -> Optional[float]:
        """Seconds until ``step`` is due for a timer, or None."""
        return self._b.timeout()

    def deadline(self) -> Optional[float]:
        """``timeout()`` as a ``time.monotonic()`` instant, or None."""
        t = self._b.timeout()
        return None if t is None else time.monotonic() + t

    def step(self, timeout: Optional[float] = 0.0) -> bool:
        """Waits up to ``timeout`` seconds (None: until something happens)
        for a datagram or a timer, then handles what came. True if an event
        was handled. An exception while handling one event goes to the
        "error" signal and the others are still handled."""
        if timeout is None:
            timeout = 86400.0
        events = json.loads(self._guard(lambda: self._b.process(timeout)))
        self._dispatch(events)
        self._wake()
        return bool(events)

    def _dispatch(self, events: List[Dict[str, Any]]) -> None:
        for event in events:
            if self._bus.closed() and event["e"] not in ("returned", "group", "failed"):
                # Closed by a handler: what is left has nobody to answer.
                continue
            try:
                self._handle(event)
            except Exception as e:  # noqa: BLE001 - one event's trouble, not the entity's
                self._emit("error", e)

    def run(self) -> None:
        """Handles the bus until ``close()``. Whatever ends it (Ctrl-C's
        KeyboardInterrupt included) says bye first, then goes on up. A
        transport error goes to the "error" signal."""
        self._b  # from the entity's own thread only
        failures = 0
        try:
            while not self._bus.closed():
                try:
                    self.step(0.1)
                    failures = 0
                except MError as e:
                    if self._bus.closed():
                        break
                    failures += 1
                    if failures >= 10:
                        raise MError(f"the bus failed 10 times in a row, the last: {e}") from None
                    self._emit("error", e)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Says bye and leaves (again: nothing). Calls still open end in
        their callbacks (outcome "closed", or "undeliverable" if the request
        was not acknowledged yet); later uses raise MError."""
        if self._b.closed():
            return
        self._detach()
        events = json.loads(self._bus.close())
        self._dispatch(events)

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._b.closed()

    def __enter__(self) -> "Entity":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- asyncio ----------------------------------------------------------

    def attach(self, loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
        """Lets an asyncio loop drive the entity (the running one by
        default): callbacks then run in that loop's thread. Attaching to
        another loop leaves the first; a closed loop is left by itself."""
        self._b  # from the entity's own thread only, whose loop this is
        loop = loop or asyncio.get_running_loop()
        if self._loop is loop and not loop.is_closed():
            self._wake()
            return
        self._detach()
        self._loop = loop
        loop.add_reader(self.fileno(), self._aio_turn)
        self._wake()

    def _detach(self) -> None:
        loop, self._loop = self._loop, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if loop is not None and not loop.is_closed() and not self._bus.closed():
            try:
                loop.remove_reader(self._bus.fileno())
            except (RuntimeError, ValueError):
                pass

    def _aio_turn(self) -> None:
        if threading.get_ident() != self._thread:
            return  # a loop of another thread: attach() is for the entity's own
        try:
            if not self._bus.closed():
                self.step(0.0)
        except Exception as e:  # noqa: BLE001 - the loop must go on, and so must the timers
            self._emit("error", e)
        finally:
            self._wake()

    def _wake(self) -> None:
        """Under asyncio: (re)arms the timer for the next deadline."""
        if self._loop is None or threading.get_ident() != self._thread:
            return
        if self._loop.is_closed():
            self._detach()
            return
        if not self._loop.is_running():
            # Armed again when the loop runs (attach, call, a turn).
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._bus.closed():
            return
        t = self._bus.timeout()
        if t is not None:
            self._timer = self._loop.call_later(t, self._aio_turn)

    # ---- events -----------------------------------------------------------

    def _guard(self, f: Callable[[], Any]) -> Any:
        try:
            return f()
        except RuntimeError as e:
            raise MError(str(e)) from None

    def _emit(self, signal: str, *args: Any) -> None:
        handlers = self._signals[signal]
        if signal == "error" and not handlers:
            print(f"mbus: {args[0]!r} (connect the 'error' signal to handle it)", file=sys.stderr)
        for h in list(handlers):
            try:
                h(*args)
            except Exception as e:  # noqa: BLE001 - a handler must not stop the entity
                if signal == "error":
                    traceback.print_exc()
                else:
                    self._emit("error", e)

    def _message(self, event: Dict[str, Any]) -> MMessage:
        msg = MMessage(self.address)
        msg.header.source = MAddress(event["src"])
        msg.header.reliable = bool(event.get("reliable", False))
        cmd = MCommand(event["name"], [from_tagged(a) for a in event.get("args", [])])
        msg.payload.append(cmd)
        msg.current_command = cmd
        return msg

    def _handle(self, event: Dict[str, Any]) -> None:
        kind = event["e"]
        if kind == "command":
            self._deliver(self._message(event))
        elif kind == "quit":
            self._deliver(self._message({"src": event["src"], "name": "mbus.quit"}))
        elif kind in ("waiting", "go"):
            # RFC 3259 §9.5 and §9.6, as commands with their condition.
            self._deliver(self._message({"src": event["src"], "name": "mbus." + kind,
                                         "args": [{"y": event["condition"]}]}))
        elif kind == "joined":
            addr = MAddress(event["addr"])
            self._emit("new-entity", addr)
            if self.newEntityFunction is not None:
                self.newEntityFunction(addr)
        elif kind == "left":
            addr = MAddress(event["addr"])
            self._emit("lost-entity", addr)
            if self.lostEntityFunction is not None:
                self.lostEntityFunction(addr)
        elif kind == "delivered":
            self._sent.pop(event["id"], None)
        elif kind == "failed":
            what = self._sent.pop(event["id"], f"a message to {MAddress(event['dst'])}")
            self._emit("error", MError(f"reliable message {what} was not acknowledged"))

    def _deliver(self, msg: MMessage) -> None:
        callbacks = self._callbacks.get(msg.current_command.name if msg.current_command else "", [])
        if not callbacks:
            self._emit("unknown-message", msg)
        for cb in list(callbacks):
            try:
                cb(msg)
            except Exception as e:  # noqa: BLE001 - the entity goes on; "error" hears it
                self._emit("error", e)


MEntity = Entity


class RPC:
    """An RPC request an RPC callback gets: ``name``, ``arguments``,
    ``source``."""

    def __init__(self, guides: "Guides", request: int, source: MAddress, name: str,
                 arguments: List[Any]) -> None:
        self._guides = guides
        self._request = request
        self.source = source
        self.name = name
        self.arguments = MList(arguments)

    def __str__(self) -> str:
        return f"{self.name} {format_value(self.arguments)}"


class RPCReturn:
    """What an RPC returns: ``success`` (True: OK, False: FAILED),
    ``result`` (a Symbol such as 'SUCCESS'), ``description`` and
    ``arguments``. Made from the RPC it answers (``RPCReturn(rpc)``);
    a caller's callback gets one with ``source``, the callee."""

    def __init__(self, rpc: Optional[RPC] = None) -> None:
        self.rpc = rpc
        self.success = True
        self.result = "OK"
        self.description = ""
        self.arguments: List[Any] = MList()
        self.source: Optional[MAddress] = None
        #: How the call ended: "ok", "failed", "unknown", "undeliverable",
        #: "timeout", "callee_left", "no_responder" or "closed".
        self.outcome = "ok"

    def __str__(self) -> str:
        status = "OK" if self.success else "FAILED"
        return f"{status} {self.result} {format_value(self.description)} {format_value(self.arguments)}"


class Guides(Entity):
    """An Entity with the Mbus Guidelines' RPC (§5.2): addRPCCallback,
    sendRPC, sendRPCReturn; ``rpcTimeout`` in milliseconds (2000)."""

    def __init__(self, address: Union[str, MAddress], config: Optional[str] = None) -> None:
        super().__init__(address, config)
        self.rpcTimeout = 2000
        self._rpc: Dict[str, Callable[[RPC], Optional[RPCReturn]]] = {}
        self._calls: Dict[int, Callable[[RPCReturn], Any]] = {}

    def addRPCCallback(self, name: str, function: Callable[[RPC], Optional[RPCReturn]]) -> None:
        """Serves RPC ``name``: ``function(rpc)`` returns an RPCReturn, or
        None to answer later with sendRPCReturn."""
        MCommand(name)
        self._guard(lambda: self._b.serve(name))
        self._rpc[name] = function

    def sendRPC(self, address: Union[str, MAddress], name: str, arguments: Sequence[Any],
                callback: Optional[Callable[[RPCReturn], Any]] = None) -> None:
        """Calls RPC ``name`` at ``address``: one entity (or one that
        appears within rpcTimeout) gets a reliable request; an address that
        matches several gets a MULTICAST request, and ``callback`` is called
        once per entity."""
        dst = _addr(address)
        MCommand(name)
        timeout = self.rpcTimeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout < 2 ** 53:
            raise ValueError(f"rpcTimeout is milliseconds, 0 or more: {timeout!r}")
        args = json.dumps(_args(arguments))
        try:
            if self._b.matches(dst.mbus()) > 1:
                call = self._b.call_group(dst.mbus(), name, args, int(timeout))
            else:
                call = self._b.call(dst.mbus(), name, args, int(timeout))
        except (LookupError, RuntimeError) as e:
            raise MError(str(e)) from None
        if callback is not None:
            self._calls[call] = callback
        self._wake()

    def sendRPCReturn(self, ret: RPCReturn) -> None:
        """Sends ``ret`` to the caller of the RPC it was made from (for a
        callback that returned None). Raises MError once the entity is
        closed."""
        if ret.rpc is None:
            raise MError("this RPCReturn answers no RPC (make it with RPCReturn(rpc))")
        if ret.rpc._guides is not self:
            raise MError("this RPCReturn answers an RPC another entity received")
        result = str(ret.result) if ret.result else ("OK" if ret.success else "FAILED")
        values = json.dumps(_args(list(ret.arguments)))
        try:
            self._b.reply(ret.rpc._request, bool(ret.success), result, str(ret.description), values)
        except RuntimeError as e:
            raise MError(str(e)) from None
        self._wake()

    async def call(self, address: Union[str, MAddress], name: str,
                   arguments: Sequence[Any] = ()) -> RPCReturn:
        """``await guides.call(...)``: sendRPC for asyncio (the entity is
        attached to the running loop); the RPCReturn of one entity."""
        if self._guard(lambda: self._b.matches(_addr(address).mbus())) > 1:
            raise MError(f"{_addr(address)} matches several entities: call() is for one "
                         "(sendRPC calls a group, with a callback per entity)")
        loop = asyncio.get_running_loop()
        self.attach(loop)
        done: "asyncio.Future[RPCReturn]" = loop.create_future()

        def finish(ret: RPCReturn) -> None:
            if not done.done():
                done.set_result(ret)

        self.sendRPC(address, name, arguments, finish)
        return await done

    def _handle(self, event: Dict[str, Any]) -> None:
        kind = event["e"]
        if kind == "request":
            self._request(event)
        elif kind == "returned":
            self._returned(self._calls.pop(event["call"], None), event)
        elif kind == "group":
            callback = self._calls.pop(event["call"], None)
            for r in event["results"]:
                self._returned(callback, r)
        else:
            super()._handle(event)

    def _request(self, event: Dict[str, Any]) -> None:
        rpc = RPC(self, event["id"], MAddress(event["src"]), event["name"],
                  [from_tagged(a) for a in event["args"]])
        function = self._rpc.get(rpc.name)
        if function is None:
            self._b.reply(rpc._request, False, "", "", "[]", True)
            return
        try:
            ret = function(rpc)
        except Exception as e:  # noqa: BLE001 - the caller gets FAILED, "error" hears it
            self._emit("error", e)
            ret = RPCReturn(rpc)
            ret.success = False
            ret.result = "EXCEPTION"
            ret.description = f"{type(e).__name__}: {e}"
        if ret is not None and not isinstance(ret, RPCReturn):
            self._emit("error", TypeError(
                f"the RPC callback for {rpc.name} returned {type(ret).__name__}: an RPCReturn, or None"
                " to answer later"))
            bad = RPCReturn(rpc)
            bad.success = False
            bad.result = "EXCEPTION"
            bad.description = f"the callee's callback returned {type(ret).__name__}"
            ret = bad
        if ret is not None and ret.rpc is not rpc:
            # Made from no RPC, or from another: it answers this one.
            answer = RPCReturn(rpc)
            answer.success, answer.result = ret.success, ret.result
            answer.description, answer.arguments = ret.description, ret.arguments
            ret = answer
        if ret is not None:
            if ret.rpc is None:
                ret.rpc = rpc
            try:
                self.sendRPCReturn(ret)
            except (MError, TypeError, ValueError) as e:
                self._emit("error", e)

    def _returned(self, callback: Optional[Callable[[RPCReturn], Any]], r: Dict[str, Any]) -> None:
        if callback is None:
            return
        ret = RPCReturn()
        ret.outcome = r["outcome"]
        ret.success = r["outcome"] == "ok"
        ret.result = r["result"] or r["outcome"].upper()
        ret.description = r["description"]
        ret.arguments = MList(from_tagged(v) for v in r["values"])
        ret.source = MAddress(r["callee"])
        try:
            callback(ret)
        except Exception as e:  # noqa: BLE001
            self._emit("error", e)
