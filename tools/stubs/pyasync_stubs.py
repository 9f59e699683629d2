"""pyasync_stubs - writes LuaLS ``---@meta`` definitions for Python modules.

The pyasync-stubs launcher runs this inside the pyasync host binary, so the
modules are imported by the interpreter and ``sys.path`` a pyasync script
sees.  Types follow pyasync's conversions (API.md section 2); coroutine
functions return ``pyasync.AwaitableOf<T>`` and async generators
``pyasync.AsyncIterableOf<T>`` (meta/pyasync.lua), which ``py.await`` and
``py.aiter`` unwrap.  Nothing here evaluates an object beyond attribute
lookup, ``dir()``, ``inspect.signature`` and type hints, and every lookup is
guarded: a module that raises, lies or loads lazily costs a member, never
the run.
"""

import argparse
import ast
import asyncio
import builtins
import collections.abc as cabc
import concurrent.futures
import contextlib
import functools
import inspect
import os
import re
import sys
import types
import typing
import warnings

VERSION = "0.1.0"

LUA_KEYWORDS = frozenset(
    "and break do else elseif end false for function goto if in local nil not "
    "or repeat return then true until while".split())
# Class names LuaLS or pyasync already own; a module of that name gets "py.".
RESERVED = frozenset(
    "any nil boolean number integer string table function thread userdata "
    "lightuserdata unknown self pyasync py".split())
LUA_GLOBALS = frozenset("string table io os math debug coroutine utf8 package py".split())
SKIP_SUBMODULES = frozenset({"test", "tests", "conftest", "setup", "__main__"})
SIMPLE = {str: "string", bytes: "string", int: "integer", float: "number",
          bool: "boolean", type(None): "nil"}
AWAITABLES = {cabc.Awaitable: 0, cabc.Coroutine: 2}
ASYNC_ITERS = (cabc.AsyncIterator, cabc.AsyncIterable, cabc.AsyncGenerator)
SEQUENCES = (list, tuple, set, frozenset, cabc.Sequence, cabc.MutableSequence,
             cabc.Iterable, cabc.Collection, cabc.Set, cabc.MutableSet)
MAPPINGS = (dict, cabc.Mapping, cabc.MutableMapping)
MAX_UNION = 8
DOC_WORDS = {"int": "integer", "integer": "integer", "float": "number", "real": "number",
             "bool": "boolean", "boolean": "boolean", "str": "string", "string": "string",
             "bytes": "string"}
# Lua allows 2^17 - 1 function prototypes in one chunk function.
MAX_FUNCTIONS = 100000


def guard(fn, *args, default=None):
    """fn(*args), or default when it raises anything but an interrupt."""
    try:
        return fn(*args)
    except (Exception, SystemExit):
        return default


def is_lua_name(s):
    return (isinstance(s, str) and s.isascii() and s.isidentifier()
            and s not in LUA_KEYWORDS)


def lua_string(s):
    out = []
    for ch in s.encode("utf-8", "replace"):
        c = chr(ch)
        if c in '"\\':
            out.append("\\" + c)
        elif 32 <= ch < 127:
            out.append(c)
        else:
            out.append("\\%d" % ch)
    return '"' + "".join(out) + '"'


def type_name(s, reserve=True):
    """A Python dotted name as a LuaLS class name (reserve: prefix a first
    component that LuaLS or pyasync owns; names made from an emitted
    parent's name have had that done)."""
    s = re.sub(r"[^A-Za-z0-9_.]", "_", s).strip(".")
    s = re.sub(r"\.+", ".", s)
    if not s or s[0].isdigit():
        s = "_" + s
    return "py." + s if reserve and s.split(".")[0] in RESERVED else s


def get_doc(obj):
    doc = guard(getattr, obj, "__doc__")
    if not isinstance(doc, str):
        return ""
    return guard(inspect.cleandoc, doc, default="") or ""


# --- signatures ----------------------------------------------------------

NO_DEFAULT = inspect.Parameter.empty


class Param:
    """One parameter: kind is 'pos', 'var', 'kw' or 'varkw'."""

    def __init__(self, name, kind, optional, hint=NO_DEFAULT, default=NO_DEFAULT):
        self.name, self.kind, self.optional, self.hint = name, kind, optional, hint
        self.default = default
        self.doc_type = None

    def default_type(self):
        """An unannotated parameter typed by its default (False, "r", 0.5);
        an int default gives number, since a float often works too."""
        t = type(self.default)
        return {bool: "boolean", str: "string", int: "number", float: "number"}.get(t)


KINDS = {inspect.Parameter.POSITIONAL_ONLY: "pos",
         inspect.Parameter.POSITIONAL_OR_KEYWORD: "pos",
         inspect.Parameter.VAR_POSITIONAL: "var",
         inspect.Parameter.KEYWORD_ONLY: "kw",
         inspect.Parameter.VAR_KEYWORD: "varkw"}


def runtime_signature(obj):
    """(params, return hint) from inspect.signature, with type hints (a
    class's from its __init__ or __new__)."""
    sig = inspect.signature(obj)
    hinted = obj
    if isinstance(obj, type):
        hinted = next((k.__dict__[m] for k in obj.__mro__ for m in ("__init__", "__new__")
                       if m in k.__dict__), None)
    hints = guard(typing.get_type_hints, hinted, default=None) or {}
    params = []
    for p in sig.parameters.values():
        hint = hints.get(p.name, p.annotation)
        params.append(Param(p.name, KINDS[p.kind], p.default is not p.empty, hint, p.default))
    return params, hints.get("return", sig.return_annotation)


def balanced_call(text, start):
    """The index of the ')' closing the '(' at start, or -1."""
    depth = 0
    for i in range(start, min(len(text), start + 4000)):
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i if c == ")" else -1
    return -1


def doc_signature(obj, name):
    """Parses 'name(a, b[, c], *, d=1)' at the top of a docstring (C
    functions and numpy ufuncs that have no text signature)."""
    doc = get_doc(obj).lstrip()
    m = re.match(r"[\w.]*?\b%s\(" % re.escape(name), doc)
    if not m:
        return None
    close = balanced_call(doc, m.end() - 1)
    if close < 0:
        return None
    inner = doc[m.end():close]
    optional, depth = set(), 0
    for tok in re.finditer(r"\[|\]|[A-Za-z_]\w*|.", inner, re.S):
        t = tok.group()
        depth += (t == "[") - (t == "]")
        if depth > 0 and re.match(r"[A-Za-z_]", t):
            optional.add(t)
    args = re.sub(r"[\[\]]", "", inner)
    args = re.sub(r"=\s*<[^>]*>", "=None", args)
    args = re.sub(r"(^|,)\s*\.\.\.\s*(?=,|$)", r"\1 *args", args)
    args = re.sub(r"(,\s*)+,", ",", args).strip().strip(",")
    tree = guard(ast.parse, "def _f(%s): pass" % args)
    if tree is None:
        return None
    a = tree.body[0].args
    params = []
    positional = a.posonlyargs + a.args
    first_default = len(positional) - len(a.defaults)
    literal = lambda node: guard(ast.literal_eval, node, default=NO_DEFAULT)
    for i, arg in enumerate(positional):
        d = literal(a.defaults[i - first_default]) if i >= first_default else NO_DEFAULT
        params.append(Param(arg.arg, "pos", i >= first_default or arg.arg in optional,
                            default=d))
    if a.vararg:
        params.append(Param(a.vararg.arg, "var", True))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults):
        params.append(Param(arg.arg, "kw", default is not None or arg.arg in optional,
                            default=literal(default) if default is not None else NO_DEFAULT))
    if a.kwarg:
        params.append(Param(a.kwarg.arg, "varkw", True))
    ret = re.match(r"\s*->\s*([\w.]+)", doc[close + 1:])
    return params, (ret.group(1) if ret else inspect.Signature.empty)


def signature(obj, name):
    """(params, return hint, has_receiver) or None when nothing is known.
    A runtime signature of a function found in a class lists its receiver;
    one read from a docstring ('a.reshape(shape, order)') does not."""
    with contextlib.suppress(Exception):
        return runtime_signature(obj) + (True,)
    sig = guard(doc_signature, obj, name)
    if sig is None:
        return None
    return sig + (bool(sig[0]) and sig[0][0].name in ("self", "cls"),)


def numpydoc_types(doc):
    """{'name': type text} of the Parameters section and 'return' of the
    Returns section of a numpydoc docstring."""
    found = {}
    for section in ("Parameters", "Returns"):
        m = re.search(r"^%s\n-{3,}\n(.*?)(?:\n\n\S|\n\S[^\n]*\n-{3,}|\Z)" % section,
                      doc, re.S | re.M)
        if not m:
            continue
        for line in m.group(1).splitlines():
            e = re.match(r"(\w+)\s*:\s*(.+)$", line)
            if e and section == "Parameters":
                found.setdefault(e.group(1), e.group(2))
            elif section == "Returns" and line and not line[0].isspace():
                found.setdefault("return", e.group(2) if e else line)
    return found


# --- the generator ---------------------------------------------------------

class Entry:
    """A module or class to emit: its Lua class name and what it holds."""

    def __init__(self, obj, name, kind, home):
        self.obj, self.name, self.kind, self.home = obj, name, kind, home
        self.members = []     # (name, value) pairs, in order
        self.truncated = False


class Generator:
    def __init__(self, opts):
        self.opts = opts
        self.names = {}       # id(obj) -> Lua class name
        self.keep = []        # the objects behind those ids
        self.used = set()
        self.entries = []
        self.externs = {}     # Lua class name -> docstring line, per file
        self.requested = set()
        self.nfuncs = 0

    # --- naming ---------------------------------------------------------

    def claim(self, obj, name, kind, home, root=False):
        name = type_name(name, root)
        base, n = name, 1
        while name in self.used:
            n += 1
            name = "%s_%d" % (base, n)
        self.used.add(name)
        self.names[id(obj)] = name
        self.keep.append(obj)
        entry = Entry(obj, name, kind, home)
        self.entries.append(entry)
        return entry

    def known(self, obj):
        return self.names.get(id(obj))

    # --- collecting -----------------------------------------------------

    def public_names(self, mod):
        """(names, listed): __all__ and the submodules when there is an
        __all__ (listed), else every dir() name; never _private ones."""
        all_ = guard(getattr, mod, "__all__")
        names = guard(dir, mod, default=None)
        if names is None:
            names = list(guard(lambda: vars(mod), default={}))
        listed = isinstance(all_, (list, tuple))
        if listed:
            extra = [n for n in names if self.is_submodule(mod, n)]
            names = list(dict.fromkeys([n for n in all_ if isinstance(n, str)] + extra))
        return [n for n in names if isinstance(n, str) and not n.startswith("_")], listed

    @staticmethod
    def imported(mod, value):
        """Whether value is a class, function or module that mod imported
        from outside its package (left out when mod has no __all__)."""
        kind = classify(value)
        top = safe_name(mod).split(".")[0] + "."
        if kind == "module":
            return not (safe_name(value) + ".").startswith(top)
        if kind in ("class", "function", "callable"):
            owner = guard(getattr, value, "__module__")
            return isinstance(owner, str) and not (owner + ".").startswith(top)
        return False

    def is_submodule(self, mod, name):
        d = guard(lambda: vars(mod), default={})
        v = d.get(name) if isinstance(d, dict) else None
        return classify(v) == "module" and self.inside(mod, v)

    @staticmethod
    def inside(mod, sub):
        top = guard(getattr, mod, "__name__", default="")
        name = guard(getattr, sub, "__name__", default="")
        return isinstance(name, str) and isinstance(top, str) and name.startswith(top + ".")

    @staticmethod
    def lookup(mod, name):
        """mod.name: from its __dict__ when there (no code runs), else
        getattr (a lazy module's __getattr__), guarded."""
        d = guard(lambda: vars(mod), default=None)
        if isinstance(d, dict) and name in d:
            return True, d[name]
        try:
            return True, getattr(mod, name)
        except (Exception, SystemExit):
            return False, None

    def collect(self, root, rootname):
        """Breadth first from root: its submodules down to --depth (so a
        name reached from higher up wins), and every class on the way."""
        self.queue = [(self.claim(root, rootname, "module", root, True), 0)]
        self.modules = 1
        while self.queue:
            entry, depth = self.queue.pop(0)
            names, listed = guard(self.public_names, entry.obj, default=([], False))
            for name in names:
                if len(entry.members) >= self.opts.max_members:
                    entry.truncated = True
                    break
                ok, value = self.lookup(entry.obj, name)
                if ok and (listed or not guard(self.imported, entry.obj, value, default=True)):
                    entry.members.append((name, value))
                    guard(self.collect_member, root, entry, depth, name, value)

    def collect_member(self, root, entry, depth, name, value):
        kind = classify(value)
        if kind == "module":
            if (self.known(value) or depth >= self.opts.depth
                    or self.modules >= self.opts.max_modules
                    or not self.inside(root, value) or name in SKIP_SUBMODULES
                    or value.__name__ in self.requested):
                return
            self.modules += 1
            sub = self.claim(value, entry.name + "." + name, "module", value)
            self.queue.append((sub, depth + 1))
        elif kind == "class":
            self.collect_class(value, entry.name + "." + name, entry.obj, 0)

    def collect_class(self, cls, name, found_in, depth):
        if self.known(cls) or guard(getattr, cls, "__module__") == "builtins":
            return
        home = sys.modules.get(guard(getattr, cls, "__module__", default=None), found_in)
        entry = self.claim(cls, name, "class", home)
        own = guard(lambda: dict(vars(cls)), default={})
        for attr, value in own.items():  # nested classes: Outer.Inner
            if not isinstance(attr, str) or attr.startswith("_"):
                continue
            if classify(value) == "class" and depth < 3:
                qual = guard(getattr, value, "__qualname__", default="")
                if isinstance(qual, str) and qual.endswith("." + attr):
                    guard(self.collect_class, value, entry.name + "." + attr, home, depth + 1)

    def class_members(self, cls):
        """Public members defined by cls and by its bases that are neither
        emitted classes nor builtins, first definition winning."""
        seen, out = set(), []
        mro = guard(inspect.getmro, cls, default=(cls,))
        for k in mro:
            if k is not cls and (self.known(k) or guard(getattr, k, "__module__") == "builtins"):
                continue
            d = guard(lambda: dict(vars(k)), default={})
            hints = guard(lambda: dict(vars(k).get("__annotations__", {})), default={})
            for attr in list(d) + [h for h in hints if h not in d]:
                if not isinstance(attr, str) or attr.startswith("_") or attr in seen:
                    continue
                seen.add(attr)
                out.append((attr, d[attr] if attr in d else AnnotationOnly(k, attr)))
        return out

    # --- types -------------------------------------------------------------

    def class_type(self, cls, where):
        name = self.known(cls)
        if name:
            return name
        if cls in SIMPLE:
            return SIMPLE[cls]
        if cls is object:
            return "any"
        if cls in (cabc.Awaitable, cabc.Coroutine, asyncio.Future, asyncio.Task,
                   concurrent.futures.Future):
            return "pyasync.AwaitableOf<any>"
        if cls in ASYNC_ITERS:
            return "pyasync.AsyncIterableOf<any>"
        if where == "param":
            if issubclass(cls, (list, tuple, set, frozenset)):
                return "any[]|pyasync.Object"
            if issubclass(cls, dict):
                return "table|pyasync.Object"
            if cls is cabc.Callable:
                return "function|pyasync.Object"
        if guard(getattr, cls, "__module__") == "builtins":
            return "pyasync.Object"
        return self.extern(cls)

    def extern(self, cls):
        """A class the run does not emit: named after its top package when
        that re-exports it (asyncio.Queue), else module.qualname; declared
        bare at the end of the file."""
        mod = guard(getattr, cls, "__module__", default="")
        short = guard(getattr, cls, "__name__", default="")
        qual = guard(getattr, cls, "__qualname__", default="")
        if not all(isinstance(s, str) and s for s in (mod, short, qual)) or "<" in qual:
            return "pyasync.Object"
        top = sys.modules.get(mod.split(".")[0])
        if top is not None and guard(lambda: vars(top).get(short)) is cls:
            name = type_name(mod.split(".")[0] + "." + short)
        else:
            name = type_name(mod + "." + qual)
        if name in self.used:
            return "pyasync.Object"
        self.externs.setdefault(name, get_doc(cls).split("\n")[0])
        return name

    def resolve_str(self, s, home):
        """A string annotation: dotted names and 'A | B' resolved in the
        defining module; anything else is unknown."""
        parts = []
        for piece in s.split("|"):
            piece = piece.strip().strip("'\"")
            if piece == "None":
                parts.append(None)
                continue
            if not re.fullmatch(r"[A-Za-z_][\w.]*", piece):
                return None
            obj = guard(lambda: vars(home)) if isinstance(home, types.ModuleType) else None
            first, *rest = piece.split(".")
            found = obj.get(first) if isinstance(obj, dict) else None
            if found is None:
                found = getattr(builtins, first, None)
            for r in rest:
                found = guard(getattr, found, r)
            if found is None:
                return None
            parts.append(found)
        return parts

    def hint(self, h, where, home=None, depth=0):
        """The LuaLS type of a type hint; where is 'param', 'return' or 'field'."""
        return guard(self._hint, h, where, home, depth, default="any") or "any"

    def _hint(self, h, where, home, depth):
        if depth > 5 or h is inspect.Parameter.empty or h is typing.Any:
            return "any"
        if h is None:
            return "nil"
        if isinstance(h, typing.ForwardRef):
            h = h.__forward_arg__
        if isinstance(h, str):
            parts = self.resolve_str(h, home)
            if not parts:
                return "any"
            return self.union([self.hint(p, where, home, depth + 1) for p in parts])
        if isinstance(h, typing.TypeVar):
            return "any"
        origin, args = typing.get_origin(h), typing.get_args(h)
        sub = lambda a, w=where: self.hint(a, w, home, depth + 1)
        if origin is typing.Union or origin is getattr(types, "UnionType", None):
            return self.union([sub(a) for a in args])
        if origin is typing.Literal:
            return self.union([self.literal(a) for a in args])
        if origin is typing.Annotated:
            return sub(args[0])
        if origin is getattr(typing, "Self", object()) or h is getattr(typing, "Self", object()):
            return "any"
        if origin in AWAITABLES or origin in (concurrent.futures.Future, asyncio.Future,
                                              asyncio.Task):
            i = AWAITABLES.get(origin, 0)
            return "pyasync.AwaitableOf<%s>" % (sub(args[i], "return") if len(args) > i else "any")
        if origin in ASYNC_ITERS:
            return "pyasync.AsyncIterableOf<%s>" % (sub(args[0], "return") if args else "any")
        if where == "param" and origin is not None:
            if origin in SEQUENCES:
                elem = sub(args[0]) if args and (origin is not tuple or len(args) == 1 or
                                                 (len(args) == 2 and args[1] is Ellipsis)) else "any"
                return ("%s[]" % elem if "|" not in elem else "any[]") + "|pyasync.Object"
            if origin in MAPPINGS:
                k, v = (sub(args[0]), sub(args[1])) if len(args) == 2 else ("any", "any")
                return "table<%s, %s>|pyasync.Object" % (k, v)
            if origin is cabc.Callable:
                return "function|pyasync.Object"
        if origin is type:
            return "pyasync.Object"
        if origin is not None and isinstance(origin, type):
            return self.class_type(origin, where)
        if isinstance(h, type):
            return self.class_type(h, where)
        return "any"

    @staticmethod
    def literal(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int) and -2**63 <= v < 2**63:
            return str(v)
        if isinstance(v, str) and len(v) < 80:
            return lua_string(v)
        return "any"

    @staticmethod
    def union(parts):
        out = list(dict.fromkeys(a for p in parts if p for a in split_union(p)))
        if not out or "any" in out or len(out) > MAX_UNION:
            return "any"
        return "|".join(out)

    def doc_word_type(self, text, where, home):
        """A numpydoc type ('int', 'ndarray or None', 'float, optional');
        classes only for results (a parameter documented as 'dtype' also
        takes a string)."""
        text = re.sub(r",?\s*optional\s*$", "", text.strip())
        parts = []
        for word in re.split(r"\s+or\s+|\s*\|\s*|\s*,\s*", text):
            word = word.strip()
            if word == "None":
                parts.append("nil")
                continue
            if not re.fullmatch(r"[A-Za-z_]\w*", word):
                return None
            obj = guard(lambda: vars(home).get(word)) if home is not None else None
            if word in DOC_WORDS:
                parts.append(DOC_WORDS[word])
            elif where != "param" and isinstance(obj, type) and self.known(obj):
                parts.append(self.known(obj))
            else:
                return None
        u = self.union(parts)
        return None if u == "any" else u

    def value_type(self, v):
        t = type(v)
        if v is None:
            return "nil"
        if t is int:
            return "integer" if -2**63 <= v < 2**63 else "pyasync.Object"
        if t in SIMPLE:
            return SIMPLE[t]
        return self.known(t) or "pyasync.Object"

    # --- emitting -----------------------------------------------------------

    def doc_lines(self, doc, out):
        if self.opts.doc_lines <= 0 or not doc:
            return
        lines = doc.splitlines()
        if len(lines) > self.opts.doc_lines:
            lines = lines[:self.opts.doc_lines] + ["..."]
        for line in lines:
            line = re.sub(r"[\x00-\x08\x0e-\x1f\x7f]", "", line).rstrip()
            if line.lstrip().startswith("@"):
                line = "\\" + line.lstrip()
            out.append("---" + line)

    def function(self, out, owner, name, fn, method, home, drop=None):
        """The annotations and the empty definition of one callable; method:
        defined with ':'; drop: the first parameter (self, cls) goes."""
        self.nfuncs += 1
        sig = signature(fn, name)
        doc = get_doc(fn)
        seen = self.seen_fn.get(id(fn))
        if seen:  # a re-export: the docstring is written once
            out.append("---Same as `%s`." % seen)
        else:
            self.seen_fn[id(fn)] = "%s.%s" % (self.current, name)
            self.keep.append(fn)
            self.doc_lines(doc, out)
        if sig is None:
            out.append("---@param ... any")
            out.append("---@return any")
            out.append(self.define(owner, name, method, ["..."]))
            return
        params, ret, receiver = sig
        if receiver and (method if drop is None else drop) and params and params[0].kind == "pos":
            params = params[1:]
        self.apply_numpydoc(params, doc, home)
        lua_params, fun_params = self.param_lines(params, out, home)
        rtype = self.return_type(fn, ret, doc, home)
        if rtype and rtype != "nil":
            out.append("---@return %s" % rtype)
        out.append(self.define(owner, name, method, lua_params))

    def apply_numpydoc(self, params, doc, home):
        if "\n---" not in doc:
            return
        types_ = numpydoc_types(doc)
        for p in params:
            if p.name in types_ and p.hint is inspect.Parameter.empty:
                p.doc_type = self.doc_word_type(types_[p.name], "param", home)

    def return_type(self, fn, ret, doc, home):
        target = guard(inspect.unwrap, fn, default=fn)
        if guard(inspect.isasyncgenfunction, target):
            y = "any"
            if typing.get_origin(ret) in ASYNC_ITERS and typing.get_args(ret):
                y = self.hint(typing.get_args(ret)[0], "return", home)
            return "pyasync.AsyncIterableOf<%s>" % y
        if guard(inspect.iscoroutinefunction, target):
            return "pyasync.AwaitableOf<%s>" % self.hint(ret, "return", home)
        if ret is inspect.Signature.empty:
            t = numpydoc_types(doc).get("return") if "\n---" in doc else None
            return (t and self.doc_word_type(t, "return", home)) or "any"
        return self.hint(ret, "return", home)

    def param_lines(self, params, out, home):
        """Writes ---@param lines; returns the Lua parameter list and the
        fun(...) parameter list."""
        names, lua_params, fun_params, kws = set(), [], [], []
        has_var = any(p.kind == "var" for p in params)
        for p in params:
            t = p.doc_type or self.hint(p.hint, "param", home)
            if t == "any" and p.hint is NO_DEFAULT:
                t = p.default_type() or t
            if p.kind in ("kw", "varkw"):
                kws.append((p, t))
                continue
            if p.kind == "var":
                continue
            n = self.param_name(p.name, names)
            opt = "?" if p.optional else ""
            out.append("---@param %s%s %s" % (n, opt, t))
            lua_params.append(n)
            fun_params.append("%s%s: %s" % (n, opt, t))
        kwdoc = self.kw_doc(kws)
        if has_var:
            t = next(self.hint(p.hint, "param", home) for p in params if p.kind == "var")
            extra = (" The last argument may be keyword arguments, passed as `py.kw{...}`: "
                     + kwdoc) if kws else ""
            out.append("---@param ... %s%s" % (self.union([t, "pyasync.Kwargs"]) if kws else t,
                                               extra))
            lua_params.append("...")
            fun_params.append("...: any")
        elif kws:
            n = self.param_name("kw", names)
            opt = "" if any(not p.optional and p.kind == "kw" for p, _ in kws) else "?"
            out.append("---@param %s%s pyasync.Kwargs Keyword arguments, passed as `py.kw{...}`: %s"
                       % (n, opt, kwdoc))
            lua_params.append(n)
            fun_params.append("%s%s: pyasync.Kwargs" % (n, opt))
        return lua_params, fun_params

    @staticmethod
    def kw_doc(kws):
        items = ["`%s` (%s%s)" % (p.name, t, "" if p.optional else ", required")
                 for p, t in kws if p.kind == "kw"]
        if any(p.kind == "varkw" for p, _ in kws):
            items.append("any other keyword" if items else "any keyword")
        return ", ".join(items) + "."

    @staticmethod
    def param_name(name, used):
        n = name if is_lua_name(name) else None
        if n is None:
            base = re.sub(r"\W", "_", name if isinstance(name, str) else "arg")
            n = base + "_" if is_lua_name(base + "_") else "arg"
        base, i = n, 1
        while n in used or n == "self" or n == "kw" and name != "kw":
            i += 1
            n = "%s%d" % (base, i)
        used.add(n)
        return n

    @staticmethod
    def define(owner, name, method, params):
        args = ", ".join(params)
        if is_lua_name(name):
            return "function %s%s%s(%s) end" % (owner, ":" if method else ".", name, args)
        if method:
            args = "self" + (", " + args if args else "")
        return "%s[%s] = function(%s) end" % (owner, lua_string(name), args)

    def constructor(self, cls, home):
        """The ---@overload that makes a class callable."""
        sig = guard(runtime_signature, cls)
        if sig is None:
            sig = guard(doc_signature, cls, guard(getattr, cls, "__name__", default="?"))
        if sig is None:
            return "---@overload fun(...: any): %s" % self.known(cls)
        scratch = []
        _, fun_params = self.param_lines(sig[0], scratch, home)
        return "---@overload fun(%s): %s" % (", ".join(fun_params), self.known(cls))

    def emit_entry(self, entry, out):
        fields, funcs = [], []
        self.current = entry.name
        if entry.kind == "class":  # now that every emitted base is known
            entry.members = self.class_members(entry.obj)
            if len(entry.members) > self.opts.max_members:
                entry.members = entry.members[:self.opts.max_members]
                entry.truncated = True
        local = "M"
        for name, value in entry.members:
            if not is_lua_name(name) and not callable_member(value):
                continue
            f, g = [], []
            if guard(self.member, entry, name, value, f, g, local, default=False) is not False:
                fields.extend(f)
                funcs.extend(g)
        out.append("")
        out.append("do")
        self.doc_lines(get_doc(entry.obj), out)
        bases = self.bases(entry) if entry.kind == "class" else "pyasync.Object"
        out.append("---@class %s: %s" % (entry.name, bases))
        if entry.kind == "class":
            out.append(self.constructor(entry.obj, entry.home))
        if entry.truncated:
            out.append("---(members after the first %d left out)" % self.opts.max_members)
        out.extend(fields)
        out.append("local %s = {}" % local)
        out.extend(funcs)
        out.append("end")

    def bases(self, entry):
        names = []
        for b in guard(lambda: entry.obj.__bases__, default=()) or ():
            n = self.known(b)
            if n and n not in names:
                names.append(n)
        return ", ".join(names) or "pyasync.Object"

    def member(self, entry, name, value, fields, funcs, local):
        home = entry.home
        method = entry.kind == "class"
        kind = classify(value)
        field = lambda t, d="": fields.append(
            ("---@field %s %s %s" % (name, t, d)).rstrip())
        if kind == "module":
            field(self.known(value) or "pyasync.Object", "Module `%s`." % safe_name(value))
        elif kind == "class":
            field(self.known(value) or self.class_type(value, "field"))
        elif kind == "annotation":
            field(self.hint(value.hint(), "field", home))
        elif kind == "property":
            fget = guard(getattr, value, "fget") or guard(getattr, value, "func")
            r = guard(runtime_signature, fget) if fget else None
            field(self.hint(r[1], "field", home) if r else "any", first_line(get_doc(value)))
        elif kind == "descriptor":
            field("any", first_line(get_doc(value)))
        elif kind in ("function", "static", "classmethod", "callable"):
            if self.nfuncs >= MAX_FUNCTIONS:
                return
            fn = value
            if kind in ("static", "classmethod"):
                fn = guard(getattr, value, "__func__", default=value)
            funcs.append("")
            if kind == "function":
                self.function(funcs, local, name, fn, method, home)
            else:  # called through the class or module: no receiver
                self.function(funcs, local, name, fn, False, home, kind == "classmethod")
        else:
            field(self.value_type(value), describe(value))

    def write(self, rootname, entries, path):
        local = re.sub(r"\W", "_", rootname.split(".")[-1])
        if local in LUA_GLOBALS or not is_lua_name(local):
            local = "py_" + local
        out = ["---@meta",
               "-- %s: LuaLS definitions for the Python module `%s`, written by"
               % (os.path.basename(path), rootname),
               "-- pyasync-stubs %s from Python %s. Do not edit; run pyasync-stubs again."
               % (VERSION, sys.version.split()[0]),
               "-- In a script:  ---@type %s" % entries[0].name,
               "--               local %s = py.import %s" % (local, lua_string(rootname))]
        self.externs = {}
        self.nfuncs = 0
        self.seen_fn = {}
        for e in entries:
            buf = []
            if guard(self.emit_entry, e, buf, default=False) is False:
                buf = ["", "---@class %s: pyasync.Object" % e.name]
            out.extend(buf)
        for name, doc in sorted(self.externs.items()):
            if name in self.used:
                continue
            out.append("")
            self.doc_lines(doc, out)
            out.append("---@class %s: pyasync.Object" % name)
        out.append("")
        with open(path, "w", encoding="utf-8", errors="replace") as f:
            f.write("\n".join(out))
        return out


class AnnotationOnly:
    """A class attribute declared by annotation only (dataclass fields)."""

    def __init__(self, cls, attr):
        self.cls, self.attr = cls, attr

    def hint(self):
        hints = guard(typing.get_type_hints, self.cls) or {}
        return hints.get(self.attr, guard(lambda: vars(self.cls)["__annotations__"][self.attr]))


CLASSES = [(AnnotationOnly, "annotation"), (types.ModuleType, "module"), (type, "class"),
           (staticmethod, "static"), (classmethod, "classmethod"),
           ((property, functools.cached_property), "property"),
           ((types.GetSetDescriptorType, types.MemberDescriptorType), "descriptor"),
           ((types.FunctionType, types.BuiltinFunctionType, types.MethodType,
             types.MethodDescriptorType, types.WrapperDescriptorType,
             types.ClassMethodDescriptorType), "function")]


def classify(v):
    """What v is, from its type alone: isinstance would ask v.__class__,
    which an object's __getattribute__ may refuse."""
    t = type(v)
    for cls, kind in CLASSES:
        if issubclass(t, cls):
            return kind
    if guard(callable, v):
        return "callable"
    return "value"


def callable_member(v):
    return classify(v) in ("function", "static", "classmethod", "callable")


def split_union(t):
    """'a|b<c|d>|e[]' -> ['a', 'b<c|d>', 'e[]']: the top-level alternatives."""
    parts, depth, cur = [], 0, ""
    for ch in t:
        depth += (ch in "<({") - (ch in ">)}")
        if ch == "|" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return parts + [cur]


def first_line(doc):
    return doc.split("\n", 1)[0][:200] if doc else ""


def safe_name(m):
    n = guard(getattr, m, "__name__", default="?")
    return n if isinstance(n, str) else "?"


def describe(v):
    if type(v) in (int, float, str, bytes, bool):
        r = guard(repr, v, default="")
        if r and len(r) <= 60 and "\n" not in r and "\r" not in r:
            return "Value: `%s`." % r.replace("`", "'")
    return ""


# --- command line ----------------------------------------------------------

def parser():
    p = argparse.ArgumentParser(
        prog="pyasync-stubs",
        description="Write LuaLS ---@meta definitions for Python modules, typed as pyasync "
                    "converts values: one file DIR/MODULE.lua per MODULE, holding the module, "
                    "its submodules (down to --depth), classes, methods, properties and "
                    "constants. Point LuaLS's workspace.library at DIR.",
        epilog="Modules are imported by the interpreter a pyasync script uses (VIRTUAL_ENV, "
               "PYTHONPATH). In Lua: ---@type numpy / local np = py.import \"numpy\".")
    p.add_argument("modules", nargs="+", metavar="MODULE", help="module to describe, e.g. aiohttp")
    p.add_argument("-o", "--output", metavar="DIR", default="stubs",
                   help="where to write the files (default: ./stubs, created)")
    p.add_argument("--depth", type=int, default=2, metavar="N",
                   help="submodule levels below each MODULE (default 2)")
    p.add_argument("--max-modules", type=int, default=200, metavar="N",
                   help="modules per file at most, MODULE included (default 200)")
    p.add_argument("--max-members", type=int, default=2000, metavar="N",
                   help="members per module or class at most (default 2000)")
    p.add_argument("--doc-lines", type=int, default=30, metavar="N",
                   help="docstring lines kept per item, 0 for none (default 30)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.add_argument("--version", action="version", version="pyasync-stubs " + VERSION)
    return p


def import_module(name):
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        return __import__("importlib").import_module(name)


def generate(opts):
    os.makedirs(opts.output, exist_ok=True)
    gen = Generator(opts)
    gen.requested = set(opts.modules)
    roots, rc = [], 0
    for name in opts.modules:
        try:
            mod = import_module(name)
        except (Exception, SystemExit) as e:
            print("pyasync-stubs: cannot import %s: %s: %s" % (name, type(e).__name__, e),
                  file=sys.stderr)
            rc = 1
            continue
        if gen.known(mod):
            continue
        start = len(gen.entries)
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            gen.collect(mod, name)
        roots.append((name, start, len(gen.entries)))
    for i, (name, start, end) in enumerate(roots):
        path = os.path.join(opts.output, name + ".lua")
        entries = gen.entries[start:end]
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            gen.write(name, entries, path)
        if not opts.quiet:
            mods = sum(e.kind == "module" for e in entries)
            print("pyasync-stubs: wrote %s (%d modules, %d classes)"
                  % (path, mods, len(entries) - mods))
    return rc


def main(argv=None):
    """Entry point: argv without the program name; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        opts = parser().parse_args(argv)
        return generate(opts)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
