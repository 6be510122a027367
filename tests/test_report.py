"""`padless report` and the schedule plots, on a compiled `tiny` project with real and hand-made length mixes."""
from __future__ import annotations

import html
import json
import re
import shutil

import pytest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# a short-text mix (tokens), like chat / review snippets, with one long outlier
LENGTHS = [12, 7, 33, 18, 9, 64, 21, 15, 11, 40, 8, 26, 14, 19, 10, 52, 13, 22, 9, 17]


@pytest.fixture()
def project(tiny_project, tmp_path):
    """A private copy of the session's compiled tiny project (reports write into the project folder)."""
    dst = tmp_path / "proj"
    shutil.copytree(tiny_project, dst)
    return dst


@pytest.fixture()
def lengths_file(tmp_path):
    p = tmp_path / "lengths.txt"
    p.write_text("\n".join(str(n) for n in LENGTHS) + "\n")
    return p


@pytest.fixture(scope="module")
def figures(tiny_project):
    from padless.commands.schedule import read_manifest, schedule_figures
    return schedule_figures(read_manifest(tiny_project), LENGTHS, batch_size=4, keep_intervals=True)


def _img_srcs(text: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', text)


def _assert_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert len(data) > 5000, f"{path} is suspiciously small ({len(data)} bytes)"


def test_report_cli_with_lengths(project, lengths_file, capsys):
    from padless.cli import main
    from padless.commands.schedule import read_manifest, schedule_figures

    rc = main(["report", str(project), "--lengths", str(lengths_file), "--batch-size", "4"])
    assert rc == 0
    out = capsys.readouterr().out.strip()
    index = project / "report" / "index.html"
    assert out == str(index)
    text = index.read_text()
    # the comparison table: padless and every baseline, simulated (timed csim of the generated kernel)
    # beside the modeled figures of the schedule command
    figs = schedule_figures(read_manifest(project), LENGTHS, batch_size=4)
    table = text.split('<table id="comparison">')[1].split("</table>")[0]
    for cls in ("padless", "padded_max", "padded_batch", "padded_fixed"):
        assert f'<tr class="{cls}">' in table
    assert "simulated</span>" in table and "modeled</span>" in table
    assert f"{figs['throughput_seq_s']:,.0f}" in table
    saved = json.loads((index.parent / "schedule.json").read_text())
    sim = saved["simulated"]
    assert sim["label"].startswith("simulated") and abs(sim["model_error"]) <= 0.10
    assert f"{sim['throughput_seq_s']:,.0f}" in table
    assert f"{sim['speedup_vs']['padded_max']:.2f}x" in table
    # plots referenced by relative path, and they exist next to the HTML
    srcs = _img_srcs(text)
    assert sorted(srcs) == ["gantt.png", "throughput.png", "utilization.png"]
    for src in srcs:
        _assert_png(index.parent / src)
    # plan, sparsity and calibration from the manifest
    manifest = json.loads((project / "manifest.json").read_text())
    assert manifest["schedule"]["part"] in text
    assert f"{manifest['resources']['dsp']['used']:,}" in text  # the kernel's resource estimate
    assert manifest["quant"]["calibration"]["dataset"] in text
    assert "Dense: no attention top-k" in text
    assert "Measured run" not in text  # no run.json yet
    assert saved["modeled"]["sequences"] == len(LENGTHS) and "_intervals" not in saved["modeled"]


def test_report_measured_section_and_out(project, lengths_file, tmp_path):
    from padless.report import build_report

    run = {"agreement": 0.9875, "cosine_mean": 0.99312, "cosine_min": 0.9512, "accuracy": 0.8,
           "accuracy_fp32": 0.81, "backend": "csim", "torch_fp32_sentences_s": 812.5, "seed": 3}
    (project / "report").mkdir()
    (project / "report" / "run.json").write_text(json.dumps(run))
    out = tmp_path / "site" / "tiny.html"
    path = build_report(project, LENGTHS, source="unit test <mix>", out=out, batch_size=4, gantt_sequences=5)
    assert path == out
    text = out.read_text()
    assert "unit test &lt;mix&gt;" in text  # autoescaped
    measured = text.split('<table id="measured">')[1].split("</table>")[0]
    assert "98.75%" in measured and "0.9931" in measured and "0.9512" in measured and "csim" in measured
    assert "812.5" in measured and "seed" in measured
    assert measured.count("measured</span>") == 6  # the figures; backend and seed describe the run
    vs = text.split('<table id="modeled-vs-measured">')[1].split("</table>")[0]
    assert "simulated</span>" in vs and "measured</span>" in vs
    srcs = _img_srcs(text)
    assert sorted(srcs) == ["tiny-gantt.png", "tiny-throughput.png", "tiny-utilization.png"]
    for src in srcs:
        _assert_png(out.parent / src)
    assert "first 5 sequences" in html.unescape(text)


def test_report_reads_main_job_run_json(project):
    """The nested run.json of `make run` (padless.main_job): measured rows, its modeled group left out."""
    from padless.report import build_report, flatten_run

    run = {"model": "tiny", "board": "u280", "dataset": "vader-movie", "sentences": 200, "tokens_mean": 21.5,
           "backend": "pynq", "device": "pynq device sim0 (simulated: kernel executed by csim)",
           "fidelity": {"accuracy_fp32": 0.75, "accuracy": 0.745, "agreement": 0.97, "cosine_mean": 0.9871,
                        "cosine_min": 0.9402},
           "host_seconds": {"fp32_reference": 1.25, "backend": 30.5},
           "modeled": {"clock_MHz": 300.0, "padless": {"throughput_seq_s": 123456789.0}},
           "measured_torch_fp32": {"sentences": 200, "seconds": 0.8, "sentences_per_s": 250.0, "batch_size": 32,
                                   "threads": 2, "padding": "batch maximum", "measured": True},
           "bitstream_command": "make -C out/tiny-u280 bitstream", "machine": {"platform": "Linux-x86_64"},
           "seconds_total": 95.2}
    flat = flatten_run(run)
    assert flat["agreement"] == 0.97 and flat["torch_fp32_sentences_s"] == 250.0 and "modeled" not in flat
    (project / "report").mkdir()
    (project / "report" / "run.json").write_text(json.dumps(run))
    text = build_report(project, LENGTHS, batch_size=4).read_text()
    measured = text.split('<table id="measured">')[1].split("</table>")[0]
    for value in ("97.00%", "0.9871", "0.9402", "74.50%", "75.00%", "250.0", "30.50", "batch 32", "make -C out/tiny-u280"):
        assert value in measured, value
    assert "123,456,789" not in text and "123456789" not in text  # the run's modeled figures are not shown
    assert '<table id="modeled-vs-measured">' in text


def test_plots_write_pngs(figures, tiny_project, tmp_path):
    from padless.commands.schedule import engine_of, read_manifest
    from padless.schedule import plots
    from padless.schedule.cost import call_cycles

    g = plots.gantt_chart({"padless": figures["_intervals"]}, tmp_path / "g.png", clock_MHz=figures["clock_MHz"],
                          lengths=LENGTHS, max_sequences=6)
    u = plots.utilization_chart(figures, tmp_path / "u.png")
    t = plots.throughput_chart(figures, tmp_path / "t.png")
    cfg = engine_of(read_manifest(tiny_project))
    padded = call_cycles(cfg, [max(LENGTHS)] * len(LENGTHS), keep_intervals=True).intervals
    both = plots.gantt_chart({"padless": figures["_intervals"], "padded_max": padded}, tmp_path / "g2.png")
    for p in (g, u, t, both):
        _assert_png(p)
    import matplotlib.image as mpimg
    h1, h2 = mpimg.imread(g).shape[0], mpimg.imread(both).shape[0]
    assert h2 > h1  # one panel per method


def test_plots_bad_input(figures, tmp_path):
    from padless.errors import InputError
    from padless.schedule import plots

    with pytest.raises(InputError, match="PNG"):
        plots.utilization_chart(figures, tmp_path / "u.svg")
    with pytest.raises(InputError, match="compare"):
        plots.throughput_chart({"utilization": 1.0}, tmp_path / "t.png")
    with pytest.raises(InputError, match="no process intervals"):
        plots.gantt_chart({"padless": {}}, tmp_path / "g.png")
    with pytest.raises(InputError, match="max_sequences"):
        plots.gantt_chart({"padless": figures["_intervals"]}, tmp_path / "g.png", max_sequences=0)
    with pytest.raises(InputError, match="stage_busy"):
        plots.utilization_chart({"throughput_seq_s": 1.0, "baselines": {}}, tmp_path / "u.png")


def test_report_errors(project, tmp_path, capsys):
    from padless.cli import main
    from padless.errors import InputError, ProjectError
    from padless.report import build_report

    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert main(["report", str(tmp_path / "missing"), "--lengths", str(empty)]) != 0
    err = capsys.readouterr().err
    assert "has no manifest.json" in err and "padless compile" in err and "Traceback" not in err

    assert main(["report", str(project), "--lengths", str(empty)]) != 0
    assert "holds no lengths" in capsys.readouterr().err
    assert not (project / "report" / "index.html").exists()

    with pytest.raises(InputError, match="no sequences"):
        build_report(project, [])
    with pytest.raises(InputError, match=".html"):
        build_report(project, LENGTHS, out=tmp_path / "r.txt")
    (project / "report").mkdir(exist_ok=True)
    (project / "report" / "run.json").write_text("{not json")
    with pytest.raises(ProjectError, match="run.json is not valid JSON"):
        build_report(project, LENGTHS)
