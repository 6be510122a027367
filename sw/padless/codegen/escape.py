"""Escaping of user strings in generated files (C++, Make, TCL, shell): nothing a user names runs.

A model's name (a transformers folder's name, an ``.onnx`` file's stem, a ``name`` stored in a torch file),
a board's part, the Python interpreter's path and every value read back from a project's manifest are
*data*. Where such a string reaches a generated file it goes through exactly one of these functions:

- :func:`ident`: reduced to an ASCII identifier ``[A-Za-z_][A-Za-z0-9_]*`` where it becomes a name (the
  Vitis HLS project, a file name, a C symbol);
- :func:`comment`: shown in a comment of any of the four languages. Everything outside a conservative
  printable ASCII set is percent-encoded (RFC 3986 style, ``%0A`` for a newline), so no comment can end
  early (a newline, a C ``*/``, a backslash line continuation, a ``??/`` trigraph) and nothing in it is
  special to Make (``$``, ``#``), TCL (``[``, ``]``, ``{``, ``}``, ``$``, ``\\``) or a shell;
- :func:`c_string`: inside a C/C++ string literal (``\\``, ``"``, ``?`` and control characters escaped);
- :func:`tcl_word`: one TCL word (brace-quoted when possible, else every special character backslashed);
- :func:`make_shell_value`: a Make variable's value that the recipe hands to a shell (shell-quoted with
  :func:`shlex.quote`, then ``$`` doubled and ``#`` escaped for Make);
- :func:`checked_name`: a value that must already be a plain name (the kernel's top function, an export
  file name): anything else is a ProjectError, never escaped into a file.

The filters are registered on the code generator's Jinja2 environments (:func:`install`). The test
``tests/test_hostile.py::test_breakout_names_run_nothing`` compiles models named with each language's
breakout characters and checks that csim, ``make -n``, ``make clean`` and ``tclsh`` run nothing of it.
"""
from __future__ import annotations

import re
import shlex
from urllib.parse import quote

from ..errors import ProjectError

#: Characters a comment may show as they are; every other one is percent-encoded.
COMMENT_SAFE = " _.,:+=@/()-"
#: Longest name shown in a comment (the rest is cut and marked with ``...``).
COMMENT_MAX = 120
#: Longest identifier made from a name.
IDENT_MAX = 48

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def ident(name, max_len: int = IDENT_MAX) -> str:
    """``name`` as an ASCII identifier ``[A-Za-z_][A-Za-z0-9_]*`` of at most ``max_len`` characters:
    every other character (non-ASCII letters included) becomes ``_``, runs of ``_`` collapse, and a
    leading digit gets a ``_`` in front. An empty result is ``"model"``."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", str(name))
    s = re.sub(r"_+", "_", s).strip("_")[:max_len].rstrip("_")
    if not s:
        return "model"
    return "_" + s[: max_len - 1] if s[0].isdigit() else s


def comment(text, max_len: int = COMMENT_MAX) -> str:
    """``text`` made safe for a one-line comment of C/C++, Make, TCL or a shell script.

    Letters, digits and ``COMMENT_SAFE`` stay; every other character is percent-encoded as its UTF-8
    bytes (``'a\\nb'`` -> ``a%0Ab``, ``'$(x)'`` -> ``%24(x)``, ``'é'`` -> ``%C3%A9``). Longer than
    ``max_len`` characters: cut, with ``...`` appended."""
    s = str(text)
    cut = len(s) > max_len
    out = quote(s[:max_len], safe=COMMENT_SAFE)
    return out + ("..." if cut else "")


def c_string(text) -> str:
    """The body of a C/C++ string literal for ``text`` (put it between double quotes): backslash, quote,
    ``?`` (trigraphs) and every character outside printable ASCII are escaped (octal per UTF-8 byte)."""
    out = []
    for b in str(text).encode("utf-8"):
        ch = chr(b)
        if ch in '\\"?':
            out.append("\\" + ch)
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return "".join(out)


def tcl_word(text) -> str:
    """``text`` as exactly one TCL word with no substitution: ``{text}`` when it holds no brace,
    backslash or newline, else every character that is not a letter, digit, ``_``, ``.``, ``-``, ``:``
    or ``/`` backslash-escaped (a newline as ``\\n``)."""
    s = str(text)
    if s and not re.search(r"[{}\\\n\r]", s):
        return "{" + s + "}"
    out = []
    for ch in s:
        if ch.isascii() and (ch.isalnum() or ch in "_.-:/"):
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif not ch.isprintable() or not ch.isascii():
            out.append("".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}" for c in ch))
        else:
            out.append("\\" + ch)
    return "".join(out) if out else "{}"


def make_shell_value(text) -> str:
    """``text`` as the value of a Make variable that recipes pass to ``/bin/sh`` as one word: quoted with
    :func:`shlex.quote`, then ``$`` -> ``$$`` (Make) and ``#`` -> ``\\#`` (not a comment). Raises
    ProjectError for a newline, which no Make value can hold."""
    s = str(text)
    if "\n" in s or "\r" in s:
        raise ProjectError(f"{s!r} holds a newline and cannot be written into a Makefile; use a path without one")
    return shlex.quote(s).replace("$", "$$").replace("#", "\\#")


def checked_name(text, what: str, pattern: str = "ident") -> str:
    """``text`` unchanged when it is a plain name (``pattern``: ``"ident"`` for a C identifier,
    ``"file"`` for a file name of letters, digits, ``_``, ``.``, ``-``), else ProjectError naming
    ``what``: values read from a project folder are checked, not escaped."""
    rx = _IDENT if pattern == "ident" else _FILE
    s = str(text)
    if not rx.match(s) or len(s) > 200:
        kind = "a C identifier" if pattern == "ident" else "a plain file name"
        raise ProjectError(f"{what} {s[:80]!r} is not {kind}; the project folder was edited or corrupted: "
                           "recompile it with `padless compile`")
    return s


FILTERS = {"ident": ident, "comment": comment, "c_string": c_string, "tcl_word": tcl_word,
           "make_shell_value": make_shell_value}


def install(env):
    """Register the escaping filters on a Jinja2 environment; returns it."""
    env.filters.update(FILTERS)
    return env
