"""Just enough of protobuf's text format for crema.spark to read solver and
net prototxts on the driver (data layers, sources, test intervals) and to
write small ones: a message is a dict of field name -> list of values
(str for scalars and enums as written, dict for messages)."""
import re

_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{}:<>\[\],;]|[^\s{}:<>\[\],;#"\']+')


def _tokens(text):
    pos = 0
    for m in _TOKEN.finditer(text):
        if m.start() != pos:
            raise ValueError("prototxt: cannot read %r" % text[pos:pos + 20])
        pos = m.end()
        t = m.group(0)
        if t[0].isspace() or t[0] == "#":
            continue
        yield t
    if pos != len(text):
        raise ValueError("prototxt: cannot read %r" % text[pos:pos + 20])


class Quoted(str):
    """A value that was a string literal (printed quoted again)."""


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}


def _unquote(t):
    if t[0] in "\"'":
        return Quoted(re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), t[1:-1]))
    return t


def parse(text):
    toks = list(_tokens(text))
    msg, i = _parse_fields(toks, 0, None)
    return msg


def _parse_fields(toks, i, close):
    msg = {}
    while i < len(toks):
        t = toks[i]
        if t == close:
            return msg, i + 1
        if t in (",", ";"):
            i += 1
            continue
        name = t
        i += 1
        if i < len(toks) and toks[i] == ":":
            i += 1
        if i < len(toks) and toks[i] in ("{", "<"):
            sub, i = _parse_fields(toks, i + 1, "}" if toks[i] == "{" else ">")
            msg.setdefault(name, []).append(sub)
        elif i < len(toks) and toks[i] == "[":
            i += 1
            while toks[i] != "]":
                if toks[i] != ",":
                    msg.setdefault(name, []).append(_unquote(toks[i]))
                i += 1
            i += 1
        else:
            val = _unquote(toks[i])
            # adjacent string literals concatenate
            while toks[i][0] in "\"'" and i + 1 < len(toks) and toks[i + 1][0] in "\"'":
                i += 1
                val = Quoted(val + _unquote(toks[i]))
            msg.setdefault(name, []).append(val)
            i += 1
    if close is not None:
        raise ValueError("prototxt: missing %r" % close)
    return msg, i


def get(msg, name, default=None):
    v = msg.get(name) if msg else None
    return v[-1] if v else default


def _quote(v):
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


# values read from a file keep their quotes (Quoted); these fields, which
# crema.spark sets itself, are strings too
_STRING_FIELDS = {"net", "snapshot_prefix", "source", "name"}


def dump(msg, indent=0):
    pad = "  " * indent
    out = []
    for name, values in msg.items():
        for v in values:
            if isinstance(v, dict):
                out.append("%s%s {\n%s%s}\n" % (pad, name, dump(v, indent + 1), pad))
            elif isinstance(v, Quoted) or name in _STRING_FIELDS:
                out.append("%s%s: %s\n" % (pad, name, _quote(v)))
            else:
                out.append("%s%s: %s\n" % (pad, name, v))
    return "".join(out)


def layer_phases(layer):
    """The phases a layer is in, by its include/exclude phase rules."""
    phases = {"TRAIN", "TEST"}
    inc = [get(r, "phase") for r in layer.get("include", [])]
    if inc:
        phases = {p for p in inc if p}
        if not phases:
            phases = {"TRAIN", "TEST"}
    for r in layer.get("exclude", []):
        p = get(r, "phase")
        if p:
            phases.discard(p)
    return phases
