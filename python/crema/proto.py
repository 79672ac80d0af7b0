"""Caffe's prototxts through libcrema's own text-format reader and printer
(crema_proto_* in crema.h): crema.Message reads a NetParameter,
SolverParameter, LayerParameter, NetState, ... and names fields by path,

    net = crema.Message.read("NetParameter", "lenet_train_test.prototxt")
    for i in range(net.count("layer")):
        print(net.get("layer[%d].name" % i), net.get("layer[%d].type" % i))
    net.set("layer[0].memory_data_param.batch_size", 32)
    net.clear("layer[0].source_class")
    state = crema.Message("NetState", "phase: TEST")
    net.filter_net(state)             # Caffe's FilterNet, the engine's rules
    print(net.text())

so that Python applies the engine's rules, not a reader of its own.
Values come back as the text format writes them (str); set() and add()
take Python values: str is written as a quoted string, bool, int and float
as literals, a Message as { its fields }, Literal("TEST") as it is."""
import ctypes

from ._capi import check, decode, encode, encode_path, lib

_NOTFOUND = 7


class Literal(str):
    """A value written into the text as it is: an enum name (TEST, MAX),
    or any text-format value."""


def quote(s):
    """s as a text-format string literal."""
    out = ['"']
    for b in s.encode("utf-8") if isinstance(s, str) else bytes(s):
        c = chr(b)
        if c == '"' or c == "\\":
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif 0x20 <= b < 0x7F:
            out.append(c)
        else:
            out.append("\\%03o" % b)
    out.append('"')
    return "".join(out)


def literal(value):
    """A Python value as a text-format value."""
    if isinstance(value, Literal):
        return str(value)
    if isinstance(value, Message):
        return "{ %s }" % value.text()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, bytes)):
        return quote(value)
    raise TypeError("crema.Message: cannot write a %s value" % type(value).__name__)


def _take(ptr, n=None):
    """A malloc'd C string as str, freed."""
    try:
        raw = ctypes.string_at(ptr, n) if n is not None else ctypes.string_at(ptr)
    finally:
        lib.crema_free(ptr)
    return raw.decode("utf-8", "surrogateescape")


class Message:
    """A Caffe message in libcrema (a crema_proto): Message(type, text="",
    filename=None) reads text; Message.read(type, path) reads a file."""

    def __init__(self, type, text="", filename=None):
        self._h = None
        h = ctypes.c_void_p()
        raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)
        check(lib.crema_proto_parse(encode(type), raw, len(raw), encode(filename) if filename else None,
                                    ctypes.byref(h)))
        self._h = h

    @classmethod
    def read(cls, type, path):
        self = cls.__new__(cls)
        self._h = None
        h = ctypes.c_void_p()
        check(lib.crema_proto_read(encode(type), encode_path(path), ctypes.byref(h)))
        self._h = h
        return self

    def __del__(self):
        h, self._h = getattr(self, "_h", None), None
        if h and lib is not None:
            lib.crema_proto_free(h)

    @property
    def type(self):
        return decode(lib.crema_proto_type(self._h))

    def text(self):
        """The message in the text format."""
        out, n = ctypes.c_void_p(), ctypes.c_size_t()
        check(lib.crema_proto_print(self._h, ctypes.byref(out), ctypes.byref(n)))
        return _take(out, n.value)

    __str__ = text

    def __repr__(self):
        return "crema.Message(%r, %r)" % (self.type, self.text())

    def copy(self):
        return Message(self.type, self.text())

    def __getstate__(self):
        return {"type": self.type, "text": self.text()}

    def __setstate__(self, st):
        Message.__init__(self, st["type"], st["text"])

    def merge(self, text):
        """Reads more text in (protobuf's Merge: scalars replaced, repeated
        fields appended to); a Message is merged by its text."""
        if isinstance(text, Message):
            text = text.text()
        raw = text.encode("utf-8", "surrogateescape")
        check(lib.crema_proto_merge(self._h, raw, len(raw)))
        return self

    def get(self, path, default=None):
        """The value at path as str (strings raw, a message as its text), an
        unset scalar as its declared default; default when a message on the
        path is not set or an index is past the end."""
        out, n = ctypes.c_void_p(), ctypes.c_size_t()
        rc = lib.crema_proto_get(self._h, encode(path), ctypes.byref(out), ctypes.byref(n))
        if rc == _NOTFOUND:
            return default
        check(rc)
        return _take(out, n.value)

    def getint(self, path, default=0):
        v = self.get(path)
        return default if v is None else int(v)

    def getfloat(self, path, default=0.0):
        v = self.get(path)
        return default if v is None else float(v)

    def getbool(self, path, default=False):
        v = self.get(path)
        return default if v is None else v == "true"

    def getlist(self, path):
        """Every value of the repeated field at path."""
        return [self.get("%s[%d]" % (path, i)) for i in range(self.count(path))]

    def message(self, path, type):
        """The message at path as a Message of its own (a copy), or None."""
        t = self.get(path)
        return None if t is None else Message(type, t, filename=path)

    def count(self, path):
        """A repeated field's number of values; 1 or 0 for a singular field
        set or not (0 when a message on the path is not set)."""
        n = ctypes.c_size_t()
        check(lib.crema_proto_count(self._h, encode(path), ctypes.byref(n)))
        return n.value

    def has(self, path):
        return self.count(path) > 0

    def field(self, path):
        """(type, repeated) of the field at path, by the schema: "int32",
        "float", "bool", "enum", "string", ... or "caffe.LayerParameter"."""
        t, r = ctypes.c_char_p(), ctypes.c_int()
        check(lib.crema_proto_field(self._h, encode(path), ctypes.byref(t), ctypes.byref(r)))
        return decode(t.value), bool(r.value)

    def set(self, path, value):
        """Replaces the field at path (every value of a repeated one)."""
        check(lib.crema_proto_set(self._h, encode(path), literal(value).encode("utf-8", "surrogateescape")))
        return self

    def add(self, path, value):
        """Appends value to the repeated field at path."""
        check(lib.crema_proto_add(self._h, encode(path), literal(value).encode("utf-8", "surrogateescape")))
        return self

    def clear(self, path):
        """Unsets the field at path (with an index: that value only)."""
        check(lib.crema_proto_clear(self._h, encode(path)))
        return self

    def upgrade(self):
        """Caffe's upgrades on read (old net formats, solver_type); True
        when anything changed."""
        ch = ctypes.c_int()
        check(lib.crema_proto_upgrade(self._h, ctypes.byref(ch)))
        return bool(ch.value)

    def filter_net(self, state):
        """Caffe's FilterNet in place: keeps the layers a NetState (a
        Message, or its text: "phase: TEST stage: 'x'") admits."""
        if not isinstance(state, Message):
            state = Message("NetState", state)
        check(lib.crema_proto_filter_net(self._h, state._h))
        return self
