"""Bounded reading of user input: YAML configs, text files and stdin (docs/reliability.md, "Bounded inputs").

Every YAML file padless reads from a user (``compile --config``, ``finetune --config``) and every text
file (``--input``, ``--calib``, ``--lengths``, ``--data``) goes through this module, so that a hostile
or careless file costs bounded time and memory and ends in one ``padless: error: ...`` line:

* YAML with :class:`BoundedLoader`, a ``yaml.SafeLoader`` that refuses aliases (``*name``: the "billion
  laughs" expansion, issue 27 item 5: 8 levels of aliases, ~500 bytes, made a 312 MB error line), refuses
  a key given twice in one mapping (YAML 1.2 section 3.2.1.1: keys are unique; PyYAML keeps the last
  silently), and nesting deeper than :data:`MAX_YAML_DEPTH` (PyYAML's composer recurses once per level:
  3,000 levels raised a RecursionError traceback), in files of at most :data:`MAX_CONFIG_BYTES`;
* text files with :func:`read_bounded`: at most :data:`MAX_INPUT_BYTES` (``PADLESS_MAX_INPUT_BYTES``
  overrides), read in chunks, so ``--input /dev/zero`` stops after that many bytes with a clear error;
* values echoed in error messages with :func:`brief`: a repr cut at :data:`BRIEF_CHARS` characters.
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from .errors import InputError

#: Deepest nesting of mappings / sequences a config may have (padless's deepest real config: 4).
MAX_YAML_DEPTH = 32
#: Largest config file, bytes (padless's largest real config is under 2 KB).
MAX_CONFIG_BYTES = 1 << 20
#: Largest text input file or stdin, bytes (env ``PADLESS_MAX_INPUT_BYTES``): 64 MiB, about 500,000
#: sentences, far above what one ``padless run`` serves.
MAX_INPUT_BYTES = 64 << 20
#: Characters of a value's repr that an error message shows.
BRIEF_CHARS = 200
_CHUNK = 1 << 20


def brief(value, limit: int = BRIEF_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters (``...`` and the full length appended when cut), so an
    error message about a huge or self-referencing value stays one short line. Never raises."""
    try:
        text = repr(value)
    except Exception as exc:  # a hostile __repr__
        return f"<{type(value).__name__} whose repr failed: {type(exc).__name__}>"
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def max_input_bytes() -> int:
    """The input size limit in bytes: ``PADLESS_MAX_INPUT_BYTES`` (a positive integer) or
    :data:`MAX_INPUT_BYTES`. Raises InputError for a malformed value."""
    raw = os.environ.get("PADLESS_MAX_INPUT_BYTES")
    if raw is None or raw == "":
        return MAX_INPUT_BYTES
    if not raw.strip().isascii() or not raw.strip().isdigit() or int(raw) < 1:
        raise InputError(f"PADLESS_MAX_INPUT_BYTES={brief(raw)} is not a positive whole number of bytes; "
                         "unset it or give e.g. 1000000000")
    return int(raw)


def read_bounded(path: str | os.PathLike, limit: int | None = None, what: str = "input file") -> bytes:
    """The bytes of ``path`` (a file, a FIFO, ``/dev/stdin``), read in 1 MiB chunks and refused past
    ``limit`` bytes (default :func:`max_input_bytes`).

    Raises:
        InputError: missing, a folder, unreadable, or larger than ``limit`` (the message says how to raise
            the limit or split the file).
    """
    p = Path(path)
    limit = max_input_bytes() if limit is None else int(limit)
    if p.is_dir():
        raise InputError(f"{p}: cannot read a folder; give a text file")
    try:
        with open(p, "rb") as f:
            parts, size = [], 0
            while True:
                chunk = f.read(min(_CHUNK, limit + 1 - size))
                if not chunk:
                    break
                parts.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise InputError(
                        f"{p}: the {what} is larger than {limit:,} bytes (the limit); split it into smaller files, "
                        "or raise the limit with PADLESS_MAX_INPUT_BYTES=<bytes> if it really is text")
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except OSError as e:
        raise InputError(f"{p}: cannot read ({e.strerror or e})") from None
    return b"".join(parts)


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` for user configs: no aliases, no duplicate keys, nesting at most
    :data:`MAX_YAML_DEPTH`. Each refusal is a ``yaml.YAMLError`` with a ``problem_mark`` (line, column)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"alias *{event.anchor} is not allowed in a padless config (aliases can expand "
                "without bound); write the value out", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                event = self.peek_event()
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_YAML_DEPTH} levels; a padless config is a few "
                    "levels deep", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue  # SafeLoader reports the unhashable key itself
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {brief(key)} is given twice in one mapping (first on line {seen[key]}); "
                        "keep one", key_node.start_mark)
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | os.PathLike, what: str = "config file"):
    """Parse the YAML file ``path`` with :class:`BoundedLoader` (at most :data:`MAX_CONFIG_BYTES`);
    returns the Python value (None for an empty file).

    Raises:
        InputError: missing, unreadable, too large, not UTF-8, not YAML, an alias, a duplicate key or too
            deep; the message names the file and, for YAML problems, the line and column.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} {p} does not exist")
    data = read_bounded(p, MAX_CONFIG_BYTES, what)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {p} cannot be read as UTF-8 text (byte {data[exc.start]:#04x} at offset "
                         f"{exc.start}); save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - BoundedLoader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise InputError(f"{what} {p} is not valid YAML ({where}{problem[:300]})") from None
    except RecursionError:
        raise InputError(f"{what} {p} is nested too deeply; a padless config is a few levels deep") from None
