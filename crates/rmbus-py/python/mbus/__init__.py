"""mbus: the local Message Bus (Mbus, RFC 3259) for Python, with pyMbus's
API, on rmbus's core.

    import mbus
    entity = mbus.Guides(mbus.MAddress("app:test module:guides"))
    entity.addCallback("tool.ping", lambda msg: print(msg.current_command))
    entity.run()

The configuration is ``$MBUS``, else ``~/.mbus`` (pyMbus's files, without
CONFIG_VERSION, work); it is created with fresh keys when missing.
"""

from .types import (MData, MError, MList, MAddress, MCommand, MHeader, MMessage, MSymbol)
from .entity import Entity, Guides, MEntity, RPC, RPCReturn

# The names pyMbus's documentation also uses.
Symbol = MSymbol
Message = MMessage
Data = MData

__all__ = [
    "MData", "MError", "MList", "MAddress", "MCommand", "MHeader", "MMessage", "MSymbol",
    "Entity", "MEntity", "Guides", "RPC", "RPCReturn", "Symbol", "Message", "Data",
]
