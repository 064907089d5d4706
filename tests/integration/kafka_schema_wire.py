"""Kafka requests encoded from Kafka's own JSON message schemas (src/proto/schema), for tests
that need well-formed requests of any API, including huge ones no client would send.

It owns a small encoder of requests (classic or, in flexible versions, compact strings and
arrays with empty tagged-field sections; tagged fields are never sent): a request is a dict of
field values by Kafka field name; a missing
field takes the schema's default (0, "", false, an empty array). Repeat(n, value) as an array
value encodes the element once and repeats its bytes n times, so requests of millions of
elements are built in milliseconds. It never decodes responses.
"""

import json
import os
import re
import struct

from kafka_wire import frame, header, uvarint

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "proto",
                          "schema")

_INTS = {"int8": ">b", "int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I",
         "int64": ">q", "float64": ">d"}


class Repeat:
    """An array value: n copies of one element."""

    def __init__(self, n, element):
        self.n = n
        self.element = element


def _load(name):
    with open(os.path.join(SCHEMA_DIR, name + ".json")) as f:
        text = "\n".join(line for line in f if not line.lstrip().startswith("//"))
    return json.loads(text)


def _in(spec, version):
    """Whether version is in a schema version range ("0+", "3-5", "none")."""
    if spec is None or spec == "none":
        return False
    m = re.fullmatch(r"(\d+)(\+|-(\d+))?", spec)
    lo = int(m.group(1))
    if m.group(2) == "+":
        return version >= lo
    hi = int(m.group(3)) if m.group(3) else lo
    return lo <= version <= hi


def _default(field):
    t = field["type"]
    if t.startswith("[]"):
        return []
    if t in ("string",):
        return field.get("default", "")
    if t in ("bytes", "records"):
        return b""
    if t == "bool":
        return str(field.get("default", "false")).lower() == "true"
    if t == "uuid":
        return bytes(16)
    if t in _INTS:
        d = field.get("default", 0)
        return int(d, 0) if isinstance(d, str) else d
    return {}  # a struct: its own defaults


def _scalar(t, v, nullable, flex):
    if t == "bool":
        return b"\x01" if v else b"\x00"
    if t in _INTS:
        return struct.pack(_INTS[t], v)
    if t == "uuid":
        return v
    if t == "string":
        if v is None:
            assert nullable
            return uvarint(0) if flex else struct.pack(">h", -1)
        b = v.encode() if isinstance(v, str) else v
        return (uvarint(len(b) + 1) if flex else struct.pack(">h", len(b))) + b
    if t in ("bytes", "records"):
        if v is None:
            assert nullable or t == "records"
            return uvarint(0) if flex else struct.pack(">i", -1)
        return (uvarint(len(v) + 1) if flex else struct.pack(">i", len(v))) + v
    raise AssertionError("no scalar type %s" % t)


def _fields(fields, values, version, flex):
    out = []
    for f in fields:
        if not _in(f["versions"], version) or "tag" in f:
            continue
        v = values.get(f["name"], _default(f))
        nullable = _in(f.get("nullableVersions"), version)
        out.append(_value(f, f["type"], v, nullable, version, flex))
    if flex:
        out.append(uvarint(0))  # no tagged fields
    return b"".join(out)


def _count(n, flex):
    return uvarint(n + 1) if flex else struct.pack(">i", n)


def _value(field, t, v, nullable, version, flex):
    if t.startswith("[]"):
        elem = t[2:]
        if v is None:
            assert nullable
            return uvarint(0) if flex else struct.pack(">i", -1)
        if isinstance(v, Repeat):
            return _count(v.n, flex) + _element(field, elem, v.element, version, flex) * v.n
        return _count(len(v), flex) + b"".join(
            _element(field, elem, e, version, flex) for e in v)
    if t in _INTS or t in ("bool", "uuid", "string", "bytes", "records"):
        return _scalar(t, v, nullable, flex)
    # A struct field: a presence byte when nullable in this version.
    body = _fields(field["fields"], v, version, flex)
    return (b"\x01" + body) if nullable else body


def _element(field, t, v, version, flex):
    if t in _INTS or t in ("bool", "uuid", "string", "bytes", "records"):
        return _scalar(t, v, False, flex)
    return _fields(field["fields"], v, version, flex)


def request(name, api_key, version, correlation_id, values):
    """A size-prefixed request frame of the named schema (e.g. "FetchRequest")."""
    schema = _load(name)
    assert schema["apiKey"] == api_key
    assert _in(schema["validVersions"], version)
    flex = _in(schema.get("flexibleVersions"), version)
    return frame(header(api_key, version, correlation_id, flexible=flex) +
                 _fields(schema["fields"], values, version, flex))
