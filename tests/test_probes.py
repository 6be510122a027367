"""Every hostile or careless command line of tests/probes.py ends in one clear line (docs/reliability.md).

Each probe runs in-process through ``padless.cli.main``: a non-zero exit, exactly one stderr line that
starts with ``padless: error:`` and names what was wrong (``probe.expect``), nothing created by a payload
(no ``PWNED`` file anywhere under the scratch folder) and the user's files byte for byte as they were.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from padless.cli import main
from probes import PROBES, PWNED, Context, reset_pynq


def run_probe(probe, tmp_path: Path, tiny_project: Path, path_project_factory, monkeypatch, capsys):
    """Run one probe in-process; returns (exit code, stderr)."""
    ctx = Context(tmp_path, tiny_project, path_project_factory)
    if probe.setup:
        probe.setup(ctx)
    fields = ctx.fields(probe)
    argv = [a.format(**fields) for a in probe.argv]
    for k, v in probe.env.items():
        monkeypatch.setenv(k, v.format(**fields))
    keep = {Path(k.format(**fields)): Path(k.format(**fields)).read_bytes() for k in probe.keep}
    reset_pynq()
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse
        rc = exc.code
    _, err = capsys.readouterr()
    reset_pynq()
    for p, data in keep.items():
        assert p.is_file() and p.read_bytes() == data, f"{p} was changed or deleted"
    return rc, err


@pytest.mark.parametrize("probe", PROBES, ids=[p.id for p in PROBES])
def test_probe_ends_in_one_clear_line(probe, tmp_path, tiny_project, path_project, monkeypatch, capsys):
    rc, err = run_probe(probe, tmp_path, tiny_project, lambda: path_project, monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert rc not in (0, None), err
    assert len(lines) == 1 and lines[0].startswith("padless: error:"), err
    assert probe.expect in lines[0], lines[0]
    assert "Traceback" not in err
    assert not list(tmp_path.rglob(PWNED)), "a payload ran"


def test_probe_ids_unique():
    ids = [p.id for p in PROBES]
    assert len(ids) == len(set(ids))
