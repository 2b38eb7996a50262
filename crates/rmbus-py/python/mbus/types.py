"""pyMbus's value and message types: MSymbol, MData, MList, MAddress,
MHeader, MCommand, MMessage, and MError.

Mbus Integers, Floats and Strings are Python's int, float and str; a
Symbol is an MSymbol (a str), binary data an MData, a list an MList (or
any list or tuple). Printing follows pyMbus's documentation: a list is
written ``(a b c )``, a float with six decimals. What goes on the wire is
RFC 3259's canonical form, which rmbus writes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from typing import Any, Iterable, List, Optional, Union

__all__ = [
    "MError", "MSymbol", "MData", "MList", "MAddress", "MHeader", "MCommand",
    "MMessage", "to_tagged", "from_tagged",
]


# Python 3.11+ limits str(int) and int(str) to 4300 digits by default; an
# Mbus Integer has no limit. Longer ones are converted 4000 digits at a
# time, without touching the process-wide limit.
_CHUNK = 4000
_CHUNK_BASE = 10 ** _CHUNK


def _int_text(v: int) -> str:
    """The decimal text of any int."""
    if -_CHUNK_BASE < v < _CHUNK_BASE:
        return str(v)
    if v < 0:
        return "-" + _int_text(-v)
    high, low = divmod(v, _CHUNK_BASE)
    return _int_text(high) + str(low).zfill(_CHUNK)


def _text_int(s: str) -> int:
    """The int of decimal text of any length."""
    if len(s) <= _CHUNK:
        return int(s)
    sign, digits = (-1, s[1:]) if s.startswith("-") else (1, s)
    value = 0
    for at in range(0, len(digits), _CHUNK):
        chunk = digits[at:at + _CHUNK]
        value = value * 10 ** len(chunk) + int(chunk)
    return sign * value


class MError(Exception):
    """A problem on the bus: a destination no entity (or several) matches,
    a reliable message nobody acknowledged, an entity used after close."""


# RFC 3259's Symbol, plus "/" as pyMbus writes ("gex/panel/plugin").
_SYMBOL = re.compile(r"[A-Za-z][A-Za-z0-9_.\-/]*\Z")
# A tag or value of an address element: printable, no space, parentheses
# or (in a tag) colon.
_TAG = re.compile(r"[!-'*-9;-~]+\Z")
_VALUE = re.compile(r"[!-'*-~]+\Z")


class MSymbol(str):
    """An Mbus Symbol: a letter, then letters, digits, ``_ - . /``."""

    def __new__(cls, value: str) -> "MSymbol":
        if not isinstance(value, str):
            raise TypeError(f"an MSymbol is made from a str, not {type(value).__name__}")
        if not _SYMBOL.match(value):
            raise ValueError(
                f"{value!r} is not an Mbus Symbol (a letter, then letters, digits, '_', '-', '.', '/')")
        return str.__new__(cls, value)

    def __repr__(self) -> str:
        return f"MSymbol({str.__repr__(self)})"


class MData:
    """Binary data, written ``<base64>``. Made from bytes, or from a str
    whose characters are bytes (pyMbus's Python 2 strings)."""

    def __init__(self, data: Union[bytes, bytearray, str]) -> None:
        if isinstance(data, str):
            try:
                data = data.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError("MData from a str takes characters below U+0100 (bytes); pass bytes") from None
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"MData holds bytes, not {type(data).__name__}")
        self.data = bytes(data)

    def __str__(self) -> str:
        return "<" + base64.b64encode(self.data).decode("ascii") + ">"

    def __repr__(self) -> str:
        return f"MData({self.data!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MData) and other.data == self.data

    def __hash__(self) -> int:
        return hash(self.data)


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def format_value(v: Any) -> str:
    """A value as pyMbus prints it."""
    if isinstance(v, bool):
        raise TypeError("Mbus has no boolean: use 1 and 0, or a Symbol")
    if isinstance(v, MSymbol):
        return str(v)
    if isinstance(v, str):
        return _quote(v)
    if isinstance(v, int):
        return _int_text(v)
    if isinstance(v, float):
        return "%f" % v
    if isinstance(v, MData):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "(" + "".join(format_value(x) + " " for x in v) + ")"
    raise TypeError(f"{type(v).__name__} is not an Mbus value (int, float, str, MSymbol, MData or a list)")


class MList(list):
    """An Mbus list: a Python list that prints as pyMbus does."""

    def __str__(self) -> str:
        return format_value(self)


_I64 = (-(2 ** 63), 2 ** 63 - 1)


def to_tagged(v: Any) -> Any:
    """The tagged form the Rust core reads (raises TypeError for what is
    no Mbus value)."""
    if isinstance(v, bool):
        raise TypeError("Mbus has no boolean: use 1 and 0, or a Symbol")
    if isinstance(v, MSymbol):
        return {"y": str(v)}
    if isinstance(v, str):
        return {"s": v}
    if isinstance(v, int):
        return {"i": v} if _I64[0] <= v <= _I64[1] else {"bi": _int_text(v)}
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("an Mbus Float is finite")
        return {"f": v}
    if isinstance(v, MData):
        return {"d": base64.b64encode(v.data).decode("ascii")}
    if isinstance(v, (list, tuple)):
        return {"l": [to_tagged(x) for x in v]}
    raise TypeError(f"{type(v).__name__} is not an Mbus value (int, float, str, MSymbol, MData or a list)")


def from_tagged(t: Any) -> Any:
    """The Python value of a tagged one."""
    (tag, v), = t.items()
    if tag == "i":
        return v
    if tag == "bi":
        return _text_int(v)
    if tag == "f":
        return float(v)
    if tag == "s":
        return v
    if tag == "y":
        return MSymbol(v) if _SYMBOL.match(v) else v
    if tag == "d":
        return MData(base64.b64decode(v))
    if tag == "l":
        return MList(from_tagged(x) for x in v)
    raise ValueError(f"unknown tag {tag!r}")


class MAddress(dict):
    """An Mbus address: ordered ``tag:value`` elements. Made from text
    (``"app:test module:x"``, parentheses allowed) or element by element
    (``addr['app'] = 'test'``); prints without parentheses."""

    def __init__(self, text: Union[str, "MAddress", None] = None) -> None:
        super().__init__()
        if text is None:
            return
        if isinstance(text, MAddress):
            self.update(text)
            return
        if not isinstance(text, str):
            raise TypeError(f"an MAddress is made from a str, not {type(text).__name__}")
        t = text.strip()
        if t.startswith("(") or t.endswith(")"):
            if not (t.startswith("(") and t.endswith(")")):
                raise ValueError(f"address {text!r}: unbalanced parentheses")
            t = t[1:-1]
        for element in t.split():
            tag, sep, value = element.partition(":")
            if not sep:
                raise ValueError(f"address {text!r}: {element!r} is not tag:value")
            self[tag] = value

    def __setitem__(self, tag: str, value: str) -> None:
        if not isinstance(tag, str) or not _TAG.match(tag):
            raise ValueError(f"{tag!r} is not an address tag (printable, no space, ':' or parentheses)")
        if not isinstance(value, str) or not _VALUE.match(value):
            raise ValueError(f"{value!r} is not an address value (printable, no space or parentheses)")
        super().__setitem__(tag, value)

    def __str__(self) -> str:
        return " ".join(f"{k}:{v}" for k, v in self.items())

    def __repr__(self) -> str:
        return f"MAddress({str(self)!r})"

    def mbus(self) -> str:
        """The address as it goes on the wire: ``(tag:value …)``."""
        return "(" + str(self) + ")"

    def matches(self, other: "MAddress") -> bool:
        """True if every element of this address is in ``other`` (RFC 3259
        §5.1: this address designates that entity)."""
        return all(other.get(k) == v for k, v in self.items())


def _address(a: Union[str, MAddress, None]) -> MAddress:
    return a if isinstance(a, MAddress) else MAddress(a)


class MHeader:
    """A message header: SeqNum, TimeStamp (seconds, as pyMbus writes),
    R or U, source, destination and acknowledgements. rmbus fills these in
    when it sends; this is what a program reads of a received message."""

    def __init__(self, destination: Union[str, MAddress, None] = None) -> None:
        self.seqnum = 0
        self.timestamp = int(time.time())
        self.reliable = False
        self.source = MAddress()
        self.destination = _address(destination)
        self.acks: List[int] = []

    def __str__(self) -> str:
        return "mbus/1.0 %d %d %s (%s) (%s) (%s)" % (
            self.seqnum, self.timestamp, "R" if self.reliable else "U", self.source,
            self.destination, " ".join(str(a) for a in self.acks))


_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*\Z")


class MCommand:
    """A command: a name and its arguments (``.args``, a list)."""

    def __init__(self, name: str, args: Optional[Iterable[Any]] = None) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"{name!r} is not a command name (a letter, then letters, digits, '_', '-', '.')")
        self.name = name
        self.args = MList(args or [])

    def __str__(self) -> str:
        return f"{self.name} {format_value(self.args)}"

    def __repr__(self) -> str:
        return f"MCommand({self.name!r}, {list(self.args)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MCommand) and (other.name, list(other.args)) == (self.name, list(self.args))


class MMessage:
    """A message: ``.header`` and ``.payload`` (its commands). Printed
    with a digest line when it has a ``hashkey`` (HMAC-MD5-96 over the text
    below it, RFC 3259 §11.4). ``current_command`` is the command a
    callback was called for."""

    def __init__(self, destination: Union[str, MAddress, None] = None,
                 hashkey: Optional[str] = None) -> None:
        self.header = MHeader(destination)
        self.payload: List[MCommand] = []
        self.hashkey = hashkey
        self.current_command: Optional[MCommand] = None

    def _body(self) -> str:
        return "\n".join([str(self.header)] + [str(c) for c in self.payload])

    def __str__(self) -> str:
        body = self._body()
        if self.hashkey is None:
            return body
        key = self.hashkey.encode("latin-1")
        try:
            decoded = base64.b64decode(key, validate=True)
            if len(decoded) >= 12:
                key = decoded
        except ValueError:
            pass
        digest = hmac.new(key, body.encode("utf-8"), hashlib.md5).digest()[:12]
        return base64.b64encode(digest).decode("ascii") + "\n" + body
