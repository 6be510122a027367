"""Tests of padless.data.datasets: parsers on real excerpts, TSV I/O, the cache, errors, real fetches.

The excerpts below are copied from the real files (vaderSentiment 3.3.2 sdist, Debian `fortunes` and
`weka` packages); long Reuters articles are shortened but keep their real escapes and trailer.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from padless.data import datasets as D
from padless.errors import DataError, InputError

# --- real excerpts -------------------------------------------------------------------------------

# movieReviewSnippets_GroundTruth.txt lines 1, 3, 28, 233, 264 (UTF-8, CRLF; no newline after the last).
VADER_MOVIE = (
    "1\t2.26666666667\tThe Rock is destined to be the 21st Century's new ''Conan'' and that he's going to "
    "make a splash even greater than Arnold Schwarzenegger, Jean Claud Van Damme or Steven Segal.\r\n"
    "3\t-0.6\tEffective but too tepid biopic\r\n"
    "28\t-0.333333333333\tAt about 95 minutes, Treasure Planet maintains a brisk pace as it races through "
    "the familiar story.\r\n"
    "233\t2.9375\tJir\u00ed Hubac's script is a gem.\r\n"
    "264\t1.36\tM\u00fcnch's genuine insight makes the film's occasional overindulgence forgivable."
).encode("utf-8")

# tweets_GroundTruth.txt lines 3, 18, 67, 83 (ASCII, CRLF, HTML entities).
VADER_TWEETS = (
    b"3\t2.873684211\tWe were 17 deep last night &amp; the love was so strong everybody felt it. Even the "
    b"band. I love love love having good ppl in my corner.\r\n"
    b"18\t0.306122449\tIts photography season in carlsbadistan. Pinhole time.\r\n"
    b"67\t0.494736842\t10 Santi Vigneti di Monteforte Soave (Soave Classico): Whoa - Soave got "
    b"(refreshingly, florally &amp; tropically) *serious* here, people!  $17 B\r\n"
    b"83\t-0.765306122\tOutside beltway is really diff. My hometown paper misspells former prez &amp; "
    b"wifes name, &amp; has *classy* comments: http://url_removed\r\n"
)

# /usr/share/games/fortunes/computers around line 683 (tab, backspace overstrike), then the start of
# /usr/share/games/fortunes/pratchett, whose last quotation has no trailing '%'.
FORTUNES = (
    "An elephant is a mouse with an operating system.\n"
    "%\n"
    "An engineer is someone who does list processing in FORTRAN.\n"
    "%\n"
    "An interpretation _\bI satisfies a sentence in the table language if and only if\n"
    "each entry in the table designates the value of the function designated by the\n"
    "%\n"
    "%\n"
    "He hated being thought of as one of those people that wore stupid\n"
    "ornamental armour. It was gilt by association.\n"
    '\t\t-- Terry Pratchett, "Night Watch"\n'
    "%\n"
    "The Assassin moved quietly from roof to roof until he was well away from\n"
    '\t\t-- Terry Pratchett, "Night Watch"\n'
)

# ReutersGrain-test.arff header and two instances (shortened), with \n, \' and \" escapes, &lt; and the
# SGML end-of-text marker &#3;.
REUTERS_ARFF = (
    "@relation 'Reuters-21578 Grain ModApte Test-weka.filters.unsupervised.attribute.NumericToBinary"
    "-weka.filters.unsupervised.instance.RemoveFolds-S0-N5-F1'\n"
    "\n"
    "@attribute Text string\n"
    "@attribute class-att {0,1}\n"
    "\n"
    "@data\n"
    "\n"
    "'ASIAN EXPORTERS FEAR DAMAGE FROM U.S.-JAPAN RIFT Mounting trade friction between the\\nU.S. And "
    "Japan has raised fears among many of Asia\\'s exporting\\nnations.\\n Reuter\\n&#3;',0\n"
    "'COMPUTER TERMINAL SYSTEMS &lt;CPML> COMPLETES SALE Computer Terminal Systems Inc said\\nit sold "
    "\\\"200,000\\\" shares to\\n&lt;Sedio N.V.> of Lugano.\\n Reuter\\n&#3;',1\n"
)


# --- VADER -----------------------------------------------------------------------------------------


def test_vader_movie_excerpt_parses_and_filters():
    texts, valences, enc = D.parse_vader_ground_truth(VADER_MOVIE, "movie.txt")
    assert enc == "utf-8"
    assert valences == [2.26666666667, -0.6, -0.333333333333, 2.9375, 1.36]
    assert texts[0].startswith("The Rock is destined to be the 21st Century's new ''Conan''")
    assert texts[3] == "Jir\u00ed Hubac's script is a gem."
    assert not any("\r" in t for t in texts)
    kept, labels = D.vader_binary(texts, valences)
    assert labels == [1, 0, 1, 1]  # the -0.333 snippet is dropped (abs(valence) < 0.5)
    assert kept[1] == "Effective but too tepid biopic"


def test_vader_tweets_excerpt_unescapes_html():
    texts, valences, enc = D.parse_vader_ground_truth(VADER_TWEETS, "tweets.txt")
    assert enc == "utf-8" and len(texts) == 4
    assert "last night & the love" in texts[0]
    assert "&amp;" not in " ".join(texts)
    assert "people! $17 B" in texts[2]  # double space collapsed
    kept, labels = D.vader_binary(texts, valences)
    assert labels == [1, 0]  # 0.306 and 0.495 are near-neutral
    assert kept[1].startswith("Outside beltway")


def test_vader_malformed_line_names_file_and_line():
    with pytest.raises(DataError, match=r"tweets\.txt:2: valence 'x' is not a number"):
        D.parse_vader_ground_truth(b"1\t1.0\tok\r\n2\tx\tbad\r\n", "tweets.txt")
    with pytest.raises(DataError, match=r"t\.txt:1: expected"):
        D.parse_vader_ground_truth(b"1 1.0 no tabs\n", "t.txt")


def test_decode_text_fallbacks():
    assert D.decode_text("Jir\u00ed".encode("utf-8")) == ("Jir\u00ed", "utf-8")
    assert D.decode_text(b"\xef\xbb\xbfBOM") == ("BOM", "utf-8")
    assert D.decode_text(b"caf\xe9 \x93quoted\x94") == ("caf\u00e9 \u201cquoted\u201d", "cp1252")
    assert D.decode_text(b"\x81\xe9") == ("\x81\u00e9", "latin-1")  # 0x81 is undefined in cp1252


# --- fortunes --------------------------------------------------------------------------------------


def test_fortunes_excerpt_splits_on_percent_lines():
    texts = D.parse_fortunes(FORTUNES)
    assert texts == [
        "An elephant is a mouse with an operating system.",
        "An engineer is someone who does list processing in FORTRAN.",
        "An interpretation _I satisfies a sentence in the table language if and only if each entry in the "
        "table designates the value of the function designated by the",
        "He hated being thought of as one of those people that wore stupid ornamental armour. It was gilt "
        'by association. -- Terry Pratchett, "Night Watch"',
        "The Assassin moved quietly from roof to roof until he was well away from -- Terry Pratchett, "
        '"Night Watch"',
    ]


# --- ARFF / Reuters --------------------------------------------------------------------------------


def test_reuters_arff_excerpt():
    arff = D.parse_arff(REUTERS_ARFF, "ReutersGrain-test.arff")
    assert arff.relation.startswith("Reuters-21578 Grain ModApte Test")
    assert arff.attributes == [("Text", "string"), ("class-att", ["0", "1"])]
    assert arff.rows[0][0].endswith("Asia's exporting\nnations.\n Reuter\n&#3;")
    assert arff.rows[1][1] == "1"
    texts, labels = D.reuters_from_arff(arff)
    assert labels == [0, 1]
    assert texts[0] == (
        "ASIAN EXPORTERS FEAR DAMAGE FROM U.S.-JAPAN RIFT Mounting trade friction between the U.S. And "
        "Japan has raised fears among many of Asia's exporting nations. Reuter"
    )
    assert texts[1] == (
        'COMPUTER TERMINAL SYSTEMS <CPML> COMPLETES SALE Computer Terminal Systems Inc said it sold '
        '"200,000" shares to <Sedio N.V.> of Lugano. Reuter'
    )


def test_arff_general_syntax():
    text = (
        "% a comment\n"
        "@RELATION weather\n"
        "@ATTRIBUTE 'out look' {sunny, 'over cast'}\n"
        "@attribute temp numeric\n"
        "@attribute note string\n"
        "@DATA\n"
        "sunny, 85 , 'a, \\'quoted\\' \\\\ \\% \\u00e9 \\t'\n"
        "% comment inside data\n"
        "'over cast',?,\"double \\\" quote\" % trailing comment\n"
        "sunny,71,'?'\n"
    )
    a = D.parse_arff(text)
    assert a.relation == "weather"
    assert a.attributes == [("out look", ["sunny", "over cast"]), ("temp", "numeric"), ("note", "string")]
    assert a.rows == [
        ["sunny", "85", "a, 'quoted' \\ % \u00e9 \t"],
        ["over cast", None, 'double " quote'],
        ["sunny", "71", "?"],  # a quoted '?' is a string, not a missing value
    ]
    texts, labels = D.reuters_from_arff(D.parse_arff(text.replace(",?,", ",70,")))
    assert labels == [0, 1, 0]  # non-integer nominal values -> index in the declaration


@pytest.mark.parametrize(
    "data_line, message",
    [
        ("'unterminated,0", r"x\.arff:4: unterminated '-quoted string"),
        ("'a','b',0", r"x\.arff:4: 3 values for 2 attributes"),
        ("'a',,0", r"x\.arff:4: empty value"),
        ("{0 'a', 1 1}", r"x\.arff:4: sparse ARFF"),
    ],
)
def test_arff_errors_name_the_line(data_line, message):
    text = "@attribute t string\n@attribute c {0,1}\n@data\n" + data_line + "\n"  # data on line 4
    with pytest.raises(DataError, match=message):
        D.parse_arff(text, "x.arff")


def test_arff_without_data_section():
    with pytest.raises(DataError, match="no @data section"):
        D.parse_arff("@relation r\n@attribute t string\n", "r.arff")


# --- TSV / lines -----------------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return p


def test_read_tsv_labelled_and_unlabelled(tmp_path):
    p = _write(tmp_path, "movie.tsv", "1\tThe Rock is destined\r\n\n0\tEffective but  too tepid biopic\n")
    ds = D.read_tsv(p)
    assert ds.name == "movie" and ds.labels == [1, 0]
    assert ds.texts == ["The Rock is destined", "Effective but too tepid biopic"]
    assert str(p) in ds.source
    u = D.read_tsv(_write(tmp_path, "u.tsv", "\tfirst\tkeeps a tab\n\tsecond\n"))
    assert u.labels is None and u.texts == ["first keeps a tab", "second"]


@pytest.mark.parametrize(
    "content, line, what",
    [
        ("1\tok\nno tab here\n", 2, "no tab"),
        ("1\tok\n\npos\tlabel is a word\n", 3, "not an integer"),
        ("1\tok\n1.0\tfloat label\n", 2, "not an integer"),
        ("0\tok\n1\t   \n", 2, "empty text"),
        ("0\tok\n\tno label\n", 2, "unlabelled line in a labelled file"),
    ],
)
def test_read_tsv_malformed_line(tmp_path, content, line, what):
    p = _write(tmp_path, "bad.tsv", content)
    with pytest.raises(InputError) as e:
        D.read_tsv(p)
    assert f"{p}:{line}:" in str(e.value) and what in str(e.value)


def test_read_tsv_bad_files(tmp_path):
    with pytest.raises(InputError, match="no data lines"):
        D.read_tsv(_write(tmp_path, "empty.tsv", "\n\n"))
    with pytest.raises(InputError, match="no such file"):
        D.read_tsv(tmp_path / "missing.tsv")
    with pytest.raises(InputError, match=r"latin\.tsv:2: not valid UTF-8"):
        D.read_tsv(_write(tmp_path, "latin.tsv", b"1\tok\n0\tcaf\xe9\n"))


def test_read_lines(tmp_path):
    p = _write(tmp_path, "in.txt", "\ufeffHello world.\r\n\n   \n  Second line \n")
    assert D.read_lines(p) == ["Hello world.", "Second line"]
    with pytest.raises(InputError, match="empty"):
        D.read_lines(_write(tmp_path, "empty.txt", ""))
    with pytest.raises(InputError, match="empty"):
        D.read_lines(_write(tmp_path, "blank.txt", " \n\n"))


def test_write_tsv_round_trip(tmp_path):
    ds = D.Dataset("x", ["multi\nline\ttext", "caf\u00e9 &amp;"], [3, -1], "test")
    D.write_tsv(ds, tmp_path / "x.tsv")
    assert (tmp_path / "x.tsv").read_text(encoding="utf-8") == "3\tmulti line text\n-1\tcaf\u00e9 &amp;\n"
    back = D.read_tsv(tmp_path / "x.tsv")
    assert back.texts == ["multi line text", "caf\u00e9 &amp;"] and back.labels == [3, -1]
    D.write_tsv(D.Dataset("u", ["a", "b"], None, "test"), tmp_path / "u.tsv")
    assert D.read_tsv(tmp_path / "u.tsv").labels is None
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary left behind


# --- cache and load_dataset -------------------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No pip, apt-get or dpkg can run: any fetch attempt fails with DataError."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(sys, "executable", str(empty / "python-missing"))


def test_cache_round_trip_without_network(tmp_path, offline, monkeypatch):
    root = tmp_path / "cache"
    ds = D.Dataset("fortunes", D.parse_fortunes(FORTUNES), None, "fortunes excerpt")
    D._store(root, ds)
    assert (root / "fortunes" / f"fortunes.v{D.CACHE_VERSION}.tsv").is_file()
    got = D.load_dataset("fortunes", cache_dir=root)
    assert got.texts == ds.texts and got.labels is None
    assert got.source.startswith("fortunes excerpt [cached at ")
    assert D.load_dataset("fortunes", limit=2, cache_dir=root).texts == ds.texts[:2]
    # $PADLESS_CACHE/data is the default root.
    texts, valences, _ = D.parse_vader_ground_truth(VADER_TWEETS)
    kept, labels = D.vader_binary(texts, valences)
    D._store(tmp_path / "env" / "data", D.Dataset("vader-tweets", kept, labels, "tweets excerpt"))
    monkeypatch.setenv("PADLESS_CACHE", str(tmp_path / "env"))
    got = D.load_dataset("vader-tweets", limit=1)
    assert got.labels == [1] and got.texts == kept[:1]


def test_calibration_texts_mixes_datasets(tmp_path, offline):
    """calibration: {dataset: name | [names], count}: count sentences split evenly, first texts of each."""
    root = tmp_path / "cache"
    fortunes = D.parse_fortunes(FORTUNES)
    texts, valences, _ = D.parse_vader_ground_truth(VADER_TWEETS)
    tweets, labels = D.vader_binary(texts, valences)
    D._store(root, D.Dataset("fortunes", fortunes, None, "fortunes excerpt"))
    D._store(root, D.Dataset("vader-tweets", tweets, labels, "tweets excerpt"))
    got, label = D.calibration_texts({"dataset": "fortunes", "count": 2}, cache_dir=root)
    assert got == fortunes[:2] and label == "fortunes"
    got, label = D.calibration_texts({"dataset": ["vader-tweets", "fortunes"], "count": 3}, cache_dir=root)
    assert got == tweets[:2] + fortunes[:1] and label == "vader-tweets+fortunes"
    assert D.calibration_texts({}, default="fortunes", default_count=1, cache_dir=root)[0] == fortunes[:1]
    for bad in ({"dataset": [], "count": 4}, {"dataset": ["fortunes", "vader-tweets"], "count": 1},
                {"dataset": "fortunes", "count": "many"}):
        with pytest.raises(InputError, match="calibration"):
            D.calibration_texts(bad, cache_dir=root)
    with pytest.raises(D.DataError, match="unknown dataset"):
        D.calibration_texts({"dataset": ["fortunes", "imdb"], "count": 4}, cache_dir=root)


def test_unknown_name_lists_known_names(tmp_path):
    with pytest.raises(DataError) as e:
        D.load_dataset("imdb", cache_dir=tmp_path)
    for name in D.DATASETS:
        assert name in str(e.value)


def test_bad_limit(tmp_path):
    with pytest.raises(InputError, match="positive integer"):
        D.load_dataset("fortunes", limit=0, cache_dir=tmp_path)


def test_fetch_failures_say_command_and_remedy(tmp_path, offline):
    with pytest.raises(DataError) as e:
        D.load_dataset("vader-movie", cache_dir=tmp_path)
    msg = str(e.value)
    assert "-m pip download --no-deps --no-binary :all:" in msg and "vaderSentiment==3.3.2" in msg
    assert "make install" in msg and "--data FILE.tsv" in msg
    with pytest.raises(DataError, match=r"apt-get/dpkg not found.*apt-get download weka.*--data FILE\.tsv"):
        D.load_dataset("reuters", cache_dir=tmp_path)
    assert not list(tmp_path.rglob("*.tsv"))


# --- real registries ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def vader_cache(tmp_path_factory):
    """One real fetch of the vaderSentiment sdist from PyPI per test session (it fills all four VADER sets)."""
    return tmp_path_factory.mktemp("vader-cache")


def test_real_vader_tweets(vader_cache):
    ds = D.load_dataset("vader-tweets", cache_dir=vader_cache)
    assert len(ds) == 3432 and set(ds.labels) == {0, 1} and sum(ds.labels) == 2345
    assert ds.texts[0].startswith("Somehow I was blessed with some really amazing friends")
    assert "4200 rated texts" in ds.source and "MIT" in ds.source
    assert D.load_dataset("vader-tweets", limit=5, cache_dir=vader_cache).texts == ds.texts[:5]


def test_real_vader_amazon_and_nyt(vader_cache):
    """The same sdist's review and editorial snippets (training text for padless finetune)."""
    amazon = D.load_dataset("vader-amazon", cache_dir=vader_cache)
    assert len(amazon) == 2985 and sum(amazon.labels) == 1750 and "3708 rated texts" in amazon.source
    assert amazon.texts[0].startswith("troubleshooting ad-2500 and ad-2600 no picture")
    nyt = D.load_dataset("vader-nyt", cache_dir=vader_cache)
    assert len(nyt) == 2970 and sum(nyt.labels) == 1187 and "5190 rated texts" in nyt.source
    assert nyt.texts[0].startswith("It's mainly a holiday celebration")


@pytest.mark.slow
def test_real_vader_movie(vader_cache):
    ds = D.load_dataset("vader-movie", cache_dir=vader_cache)
    assert "10605 rated texts" in ds.source  # before the abs(valence) >= 0.5 filter
    assert len(ds) == 10072 and len(ds.labels) == len(ds.texts)
    assert set(ds.labels) == {0, 1} and sum(ds.labels) == 4996
    assert ds.texts[2] == "Effective but too tepid biopic" and ds.labels[:3] == [1, 1, 0]


@pytest.mark.slow
def test_real_vader_movie_split(vader_cache):
    """The train / test views partition vader-movie by a hash of the text: disjoint, complete, about 1:4,
    order kept, and a text's side does not depend on where it sits in the file."""
    full = D.load_dataset("vader-movie", cache_dir=vader_cache)
    train = D.load_dataset("vader-movie-train", cache_dir=vader_cache)
    test = D.load_dataset("vader-movie-test", cache_dir=vader_cache)
    assert (len(train), len(test)) == (7974, 2098) and sum(test.labels) == 1026
    assert not set(train.texts) & set(test.texts)
    assert sorted(train.texts + test.texts) == sorted(full.texts)
    assert all(D.in_test_split(t) for t in test.texts) and not any(D.in_test_split(t) for t in train.texts)
    assert test.texts == [t for t in full.texts if D.in_test_split(t)]  # file order kept
    assert train.labels == [y for t, y in zip(full.texts, full.labels) if not D.in_test_split(t)]
    assert D.load_dataset("vader-movie-test", limit=3, cache_dir=vader_cache).texts == test.texts[:3]
    assert "test split" in test.source and "train split" in train.source


def _apt_usable() -> bool:
    return shutil.which("apt-get") is not None and shutil.which("dpkg") is not None and (
        D._apt_lists_present() or os.geteuid() == 0
    )


@pytest.mark.slow
@pytest.mark.skipif(not _apt_usable(), reason="needs apt-get/dpkg with package lists (a Debian machine)")
def test_real_fortunes(tmp_path):
    ds = D.load_dataset("fortunes", cache_dir=tmp_path)
    assert 14000 <= len(ds) <= 15000 and ds.labels is None
    assert ds.texts[0].startswith("7:30, Channel 5: The Bionic Dog")  # art, the first file
    assert all("\n" not in t and "\b" not in t and t for t in ds.texts)


@pytest.mark.slow
@pytest.mark.skipif(not _apt_usable(), reason="needs apt-get/dpkg with package lists (a Debian machine)")
def test_real_reuters(tmp_path):
    ds = D.load_dataset("reuters", cache_dir=tmp_path)
    assert len(ds) == 2158 and sum(ds.labels) == 160  # train 1554 (103 grain) + test 604 (57 grain)
    assert ds.texts[0].startswith("BAHIA COCOA REVIEW Showers continued")
    assert "&#3;" not in ds.texts[0] and ds.texts[0].endswith("Reuter")
