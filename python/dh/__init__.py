"""dh: shared-memory channels between processes, from Python.

A channel is a named ring of fixed-size slots in /dev/shm (dh.NAME) with
one writer and any number of readers, as the dh-* commands make and use.
This package is a thin layer over libdh (the C core, in dh._dh): messages
are read and written in place in shared memory, blocking waits release
the GIL and Ctrl-C interrupts them.

    import dh
    dh.create("temp", slots=64, slot_size="4K", policy="sync",
              schema="ts:u64 ; temp:f32")
    with dh.Writer("temp") as w:            # end-of-stream on a clean exit
        w.write(record_bytes)               # bytes or any buffer
        with w.reserve() as slot:           # a writable memoryview into the slot:
            slot[:8] = ...                  # committed on exit, aborted on error
    with dh.Reader("temp", start="oldest", timeout=2.0) as r:
        for m in r:                         # m.seq, m.time_ns, m.lost, m.data
            use(m.data)                     # zero-copy; valid until the next one
        arr = r.read_records(1000)          # schema channels: numpy structured array

Errors are exceptions derived from dh.Error (an OSError): ChannelNotFound,
ChannelExists, ChannelBusy, Timeout, ChecksumError, WriterDead,
SchemaMismatch, ... each with .code (errno or DH_E* value) and .channel.

Handles (Reader, Writer, Broker) belong to one thread at a time: open one
per thread. They must not be used across fork(); a child never closes its
parent's handles.
"""

from __future__ import annotations

import errno as _errno
import json as _json
import os as _os
import struct as _struct
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from . import _dh
from ._dh import Message, Transaction, check, keygen, remove, schema_info, strerror

try:  # optional: records come back as tuples without it
    import numpy as _np
except ImportError:  # pragma: no cover - exercised by the no-numpy test
    _np = None

__all__ = [
    "create", "remove", "keygen", "stat", "check", "schema_info", "schema_dtype", "strerror",
    "Reader", "Writer", "Message", "Transaction", "Broker",
    "Error", "ChannelNotFound", "ChannelExists", "ChannelBusy", "AccessDenied", "NoSpace",
    "InvalidArgument", "Timeout", "CorruptChannel", "NotAChannel", "VersionMismatch",
    "ChecksumError", "SchemaMismatch", "WriterDead", "Evicted", "KeyError_", "WrongKey",
    "MessageTooBig", "Unsupported", "KeyNeeded", "NotKeyed", "KeyFileMode", "KeyFileSize",
    "BrokerError",
]

__version__ = _dh.LIBDH_VERSION

# ---- exceptions ---------------------------------------------------------------


class Error(OSError):
    """Base of every dh error. .code: the errno or DH_E* value (positive);
    .channel: the channel (or endpoint) concerned, when known."""

    code: int = 0
    channel: Optional[str] = None


class ChannelNotFound(Error, FileNotFoundError):
    """No such channel (ENOENT)."""


class ChannelExists(Error, FileExistsError):
    """The channel already exists (EEXIST)."""


class ChannelBusy(Error):
    """Another writer is alive, or a participant blocks removal (EBUSY);
    .holder is its pid when known."""

    holder: Optional[int] = None


class AccessDenied(Error, PermissionError):
    """Permission denied (EACCES, EPERM)."""


class NoSpace(Error):
    """No room: /dev/shm full, or the reader table full (ENOSPC)."""


class InvalidArgument(Error, ValueError):
    """libdh refused an argument (EINVAL)."""


class Timeout(Error, TimeoutError):
    """Nothing happened within the timeout (ETIMEDOUT)."""


class CorruptChannel(Error):
    """The segment header or a descriptor is inconsistent (DH_ECORRUPT)."""


class NotAChannel(Error):
    """Not a dh segment (DH_EFOREIGN)."""


class VersionMismatch(Error):
    """A dh segment of an unsupported format version (DH_EVERSION)."""


class ChecksumError(Error):
    """A message failed its checksum and was not delivered (DH_ECHECKSUM);
    .seq says which. The reader skipped it: reading again goes on."""

    seq: Optional[int] = None


class SchemaMismatch(Error):
    """The channel's record schema differs from the one asked for (DH_ESCHEMA),
    or a message is not one record of it."""


class WriterDead(Error):
    """The writer died without marking end-of-stream and the data is drained
    (DH_EWRITERDEAD)."""


class Evicted(Error):
    """This reader was evicted for stalling a sync channel (DH_EEVICTED)."""


class KeyError_(Error):
    """Base of the MAC key errors (named with an underscore: not the
    builtin KeyError, which is for mappings)."""


class WrongKey(KeyError_):
    """Not the channel's MAC key (DH_EKEY)."""


class KeyNeeded(KeyError_):
    """The channel is keyed and no key was given (DH_EKEYNEEDED)."""


class NotKeyed(KeyError_):
    """A key was given for a channel without one (DH_ENOTKEYED)."""


class KeyFileMode(KeyError_):
    """Key file not a regular file of ours with mode 0600 or stricter (DH_EKEYMODE)."""


class KeyFileSize(KeyError_):
    """Key file does not hold exactly 32 bytes (DH_EKEYSIZE)."""


class MessageTooBig(Error, ValueError):
    """The message is larger than a slot (DH_ETOOBIG)."""


class Unsupported(Error):
    """Option not supported by this build or channel (DH_EUNSUPPORTED)."""


class BrokerError(Error):
    """The broker refused or failed a request (EPROTO); .detail has its message."""


_dh._register_errors(Error, {
    _errno.ENOENT: ChannelNotFound,
    _errno.EEXIST: ChannelExists,
    _errno.EBUSY: ChannelBusy,
    _errno.EACCES: AccessDenied,
    _errno.EPERM: AccessDenied,
    _errno.ENOSPC: NoSpace,
    _errno.EINVAL: InvalidArgument,
    _errno.ETIMEDOUT: Timeout,
    _errno.EAGAIN: Timeout,
    _errno.EPROTO: BrokerError,
    _dh.DH_ECORRUPT: CorruptChannel,
    _dh.DH_EFOREIGN: NotAChannel,
    _dh.DH_EVERSION: VersionMismatch,
    _dh.DH_ECHECKSUM: ChecksumError,
    _dh.DH_ESCHEMA: SchemaMismatch,
    _dh.DH_EWRITERDEAD: WriterDead,
    _dh.DH_EEVICTED: Evicted,
    _dh.DH_EKEY: WrongKey,
    _dh.DH_ETOOBIG: MessageTooBig,
    _dh.DH_EUNSUPPORTED: Unsupported,
    _dh.DH_EKEYNEEDED: KeyNeeded,
    _dh.DH_ENOTKEYED: NotKeyed,
    _dh.DH_EKEYMODE: KeyFileMode,
    _dh.DH_EKEYSIZE: KeyFileSize,
})

# ---- channels -------------------------------------------------------------------

_SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
KeyArg = Union[None, bytes, bytearray, memoryview, str, "_os.PathLike[str]"]


def _size(v: Union[int, str], what: str) -> int:
    """An int, or a string like dh-create's SIZE: digits and K, M or G (powers of 1024)."""
    if isinstance(v, bool):
        raise TypeError(f"{what} must be an int or a size string like '4K'")
    if isinstance(v, int):
        n = v
    elif isinstance(v, str):
        s = v.strip()
        unit = s[-1:].upper() if s[-1:].isalpha() else ""
        digits = s[:-1] if unit else s
        if unit not in _SUFFIX or not digits.isdigit():
            raise ValueError(f"{what}: invalid size {v!r} (a number with optional K, M or G)")
        n = int(digits) * _SUFFIX[unit]
    else:
        raise TypeError(f"{what} must be an int or a size string like '4K'")
    if n < 0 or n >= 1 << 32:
        raise ValueError(f"{what} out of range: {v!r}")
    return n


def create(name: str, *, slots: int = 64, slot_size: Union[int, str, None] = None,
           policy: str = "sync", checksum: Optional[str] = None, schema: Optional[str] = None,
           key: KeyArg = None, meta_size: Union[int, str] = 0, max_readers: int = 16,
           mode: int = 0o600, evict_after: Optional[float] = None, exist_ok: bool = False) -> None:
    """Create channel name (like dh-create).

    slots, slot_size (int or '4K'; default 64 KiB, or the record size when a
    schema is given), policy and checksum (their names in dh(7), as
    dh-create takes them; a key makes the checksum a MAC), schema (a record SPEC),
    key (32 bytes or a key file path: a keyed channel), meta_size, max_readers,
    mode (permission bits), evict_after (sync: seconds after which a stalled
    reader is evicted). ChannelExists if it exists, unless exist_ok.
    """
    if slot_size is None:
        slot_size = schema_info(schema)["size"] if schema is not None else 64 << 10
    evict = 0
    if evict_after is not None:
        if evict_after <= 0:
            raise ValueError("evict_after must be > 0 seconds")
        evict = int(evict_after * 1e9)
    try:
        _dh._create(name, slots, _size(slot_size, "slot_size"), policy, checksum, schema, key,
                    _size(meta_size, "meta_size"), max_readers, mode, evict)
    except ChannelExists:
        if not exist_ok:
            raise


def stat(name: Optional[str] = None, *, all: bool = False) -> Dict[str, Any]:
    """What dh-stat --json reports: for every channel, the document
    {"time_ns": ..., "channels": [...]}; for one name, that channel's object.
    all: also the layout and free table entries (dh-stat --all)."""
    if name is not None and not _os.path.exists(f"/dev/shm/dh.{name}"):
        raise ChannelNotFound(_errno.ENOENT, _os.strerror(_errno.ENOENT), name)
    doc = _json.loads(_dh._stat_json(None if name is None else [name], all))
    return doc if name is None else doc["channels"][0]


# ---- schemas ----------------------------------------------------------------------

_NP = {"i8": "i1", "i16": "i2", "i32": "i4", "i64": "i8", "u8": "u1", "u16": "u2", "u32": "u4",
       "u64": "u8", "f32": "f4", "f64": "f8"}
_ST = {"i8": "b", "i16": "h", "i32": "i", "i64": "q", "u8": "B", "u16": "H", "u32": "I",
       "u64": "Q", "f32": "f", "f64": "d"}


def schema_dtype(schema: str):
    """The numpy structured dtype of a record SPEC: one field per schema field
    (host byte order; char[N] as bytes 'SN'; arrays as subarrays), padding left
    out, offsets and itemsize exactly the record's. Needs numpy."""
    if _np is None:
        raise ImportError("numpy is needed for dtypes (apt-get install python3-numpy)")
    info = schema_info(schema)
    names, formats, offsets = [], [], []
    for fname, ftype, count, offset, _size_, is_array in info["fields"]:
        if ftype == "pad":
            continue
        if ftype == "char":
            fmt: Any = f"S{count}"
        elif is_array:
            fmt = (_np.dtype("=" + _NP[ftype]), (count,))
        else:
            fmt = _np.dtype("=" + _NP[ftype])
        names.append(fname)
        formats.append(fmt)
        offsets.append(offset)
    return _np.dtype({"names": names, "formats": formats, "offsets": offsets,
                      "itemsize": info["size"]})


def _tuple_decoder(schema: str):
    """record bytes -> tuple, without numpy (struct module)."""
    info = schema_info(schema)
    parts = []
    for _name, ftype, count, offset, _size_, is_array in info["fields"]:
        if ftype == "pad":
            continue
        if ftype == "char":
            parts.append((offset, _struct.Struct(f"={count}s"), "char"))
        elif is_array:
            parts.append((offset, _struct.Struct(f"={count}{_ST[ftype]}"), "array"))
        else:
            parts.append((offset, _struct.Struct("=" + _ST[ftype]), "scalar"))

    def decode(buf, base=0):
        out = []
        for offset, st, kind in parts:
            v = st.unpack_from(buf, base + offset)
            out.append(v if kind == "array" else v[0])
        return tuple(out)

    return decode


# ---- Reader and Writer ---------------------------------------------------------------


class Reader(_dh.Reader):
    __doc__ = _dh.Reader.__doc__

    @property
    def dtype(self):
        """numpy dtype of the channel's records (schema channels; needs numpy)."""
        if self.schema is None:
            raise TypeError(f"{self.name}: channel has no schema")
        return schema_dtype(self.schema)

    def read_records(self, count: int, timeout: Optional[float] = ...):  # type: ignore[assignment]
        """Up to count records of a schema channel: waits (timeout, default the
        reader's) for the first, then takes only what is already there. With
        numpy, a structured array (dtype: self.dtype) owning its memory; without,
        a list of tuples. Empty at end-of-stream. Timeout if nothing arrives."""
        if self.record_size == 0:
            raise TypeError(f"{self.name}: channel has no schema: records need one")
        if count < 0:
            raise ValueError("count must be >= 0")
        t = self.timeout if timeout is ... else timeout
        rs = self.record_size
        if _np is not None:
            arr = _np.empty(count, dtype=self.dtype)
            n = self._read_records(arr.view(_np.uint8).reshape(-1) if count else bytearray(0), count, t)
            return arr[:n]
        buf = bytearray(count * rs)
        n = self._read_records(buf, count, t)
        dec = _tuple_decoder(self.schema)
        return [dec(buf, i * rs) for i in range(n)]

    def records(self, batch: int = 1024, timeout: Optional[float] = ...):  # type: ignore[assignment]
        """Iterate over batches (read_records(batch)) until end-of-stream."""
        while True:
            a = self.read_records(batch, timeout)
            if len(a) == 0:
                return
            yield a

    def __repr__(self) -> str:
        return _dh.Reader.__repr__(self)


class Writer(_dh.Writer):
    __doc__ = _dh.Writer.__doc__

    @property
    def dtype(self):
        """numpy dtype of the channel's records (schema channels; needs numpy)."""
        if self.schema is None:
            raise TypeError(f"{self.name}: channel has no schema")
        return schema_dtype(self.schema)

    def write_records(self, records, timeout: Optional[float] = ...) -> int:  # type: ignore[assignment]
        """Publish each record of a structured array (dtype itemsize = the record
        size, e.g. self.dtype) or of a bytes-like holding whole records, one
        message per record. Returns the count."""
        rs = self.record_size
        if rs == 0:
            raise TypeError(f"{self.name}: channel has no schema: records need one")
        mv = memoryview(records).cast("B") if not isinstance(records, (bytes, bytearray)) else records
        if len(mv) % rs:
            raise SchemaMismatch(f"{self.name}: {len(mv)} bytes is not a whole number of "
                                 f"{rs}-byte records")
        if len(mv) == 0:
            return 0
        if timeout is ...:
            return self.write_many(mv, rs)
        return self.write_many(mv, rs, timeout)

    def __repr__(self) -> str:
        return _dh.Writer.__repr__(self)


# ---- broker ------------------------------------------------------------------------------


class Broker(_dh.Broker):
    __doc__ = _dh.Broker.__doc__

    def channels(self, channel: Optional[str] = None) -> List[Dict[str, Any]]:
        """Registered channels (only channel's when given), as dh-stat --broker
        --json lists them: host, pid, policy, geometry, readers, metrics, ..."""
        return _json.loads(self._list(channel))

    def events(self, timeout: Optional[float] = None) -> Iterator[Dict[str, Any]]:  # type: ignore[override]
        """Subscribe to the broker's events: yields each event as a dict, forever
        (each wait bounded by timeout seconds, then Timeout; None: no bound)."""
        sub = _dh.Broker.events(self, timeout)
        try:
            while True:
                yield _json.loads(sub.next_json())
        finally:
            sub.close()

    def subscribe(self, timeout: Optional[float] = None) -> "_dh.Events":
        """The raw subscription (next_json(timeout), close()): subscribe before
        causing the events you wait for, then read them."""
        return _dh.Broker.events(self, timeout)
