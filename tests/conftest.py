"""Shared fixtures: the real MiniLM spec, a compiled `tiny` project, real sentences."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def minilm():
    from padless.models import resolve_model
    spec, _ = resolve_model("minilm-l6")
    return spec


@pytest.fixture(scope="session")
def tiny_spec():
    from padless.models import resolve_model
    spec, _ = resolve_model("tiny")
    return spec


@pytest.fixture(scope="session")
def movie_texts():
    """Real VADER movie-review snippets (fetched from the PyPI sdist into the cache once)."""
    from padless.data.datasets import load_dataset
    return load_dataset("vader-movie")


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory):
    """`padless compile tiny` into a session tmp folder (calibrated on real VADER tweets)."""
    from padless.build import compile_project
    out = tmp_path_factory.mktemp("tiny") / "proj"
    compile_project("tiny", board="u280", out=out)
    return out


@pytest.fixture(scope="session")
def path_project(tmp_path_factory):
    """(project, model folder): a project compiled from a transformers folder given by path."""
    from padless.build import compile_project
    from probes import make_bert_folder
    base = tmp_path_factory.mktemp("pathproj")
    model = make_bert_folder(base / "model")
    compile_project(str(model), board="u280", out=base / "proj", calib_count=16)
    return base / "proj", model
