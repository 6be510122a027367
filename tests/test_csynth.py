"""Vitis HLS csynth.xml reports into the project (padless.csynth): parser, manifest entry, profile and DSE."""
import shutil

import pytest

from padless.boards import load_board
from padless.csynth import clock_of, parse_csynth_xml, parse_report_dir, record
from padless.errors import ProjectError

TOP = """<?xml version="1.0" encoding="UTF-8"?>
<profile>
  <ReportVersion><Version>2022.2</Version></ReportVersion>
  <UserAssignments>
    <unit>ns</unit><ProductFamily>virtexuplusHBM</ProductFamily><Part>xcu280-fsvh2892-2L-e</Part>
    <TopModelName>padless_encoder</TopModelName><TargetClockPeriod>6.67</TargetClockPeriod>
    <ClockUncertainty>1.80</ClockUncertainty><FlowTarget>vitis</FlowTarget>
  </UserAssignments>
  <PerformanceEstimates>
    <PipelineType>no</PipelineType>
    <SummaryOfTimingAnalysis><unit>ns</unit><EstimatedClockPeriod>{period}</EstimatedClockPeriod></SummaryOfTimingAnalysis>
    <SummaryOfOverallLatency>
      <unit>clock cycles</unit><Best-caseLatency>12</Best-caseLatency><Average-caseLatency>undef</Average-caseLatency>
      <Worst-caseLatency>undef</Worst-caseLatency><Interval-min>13</Interval-min><Interval-max>undef</Interval-max>
    </SummaryOfOverallLatency>
    <SummaryOfLoopLatency>
      <VITIS_LOOP_512_1>
        <TripCount>1 ~ 6</TripCount><Latency>?</Latency><IterationLatency>?</IterationLatency>
        <VITIS_LOOP_520_2><TripCount>6</TripCount><Latency>42</Latency><PipelineII>1</PipelineII><PipelineDepth>7</PipelineDepth></VITIS_LOOP_520_2>
      </VITIS_LOOP_512_1>
    </SummaryOfLoopLatency>
  </PerformanceEstimates>
  <AreaEstimates>
    <Resources><BRAM_18K>1500</BRAM_18K><DSP>6100</DSP><FF>700000</FF><LUT>650000</LUT><URAM>300</URAM></Resources>
    <AvailableResources><BRAM_18K>4032</BRAM_18K><DSP>9024</DSP><FF>2607360</FF><LUT>1303680</LUT><URAM>960</URAM></AvailableResources>
  </AreaEstimates>
</profile>
"""
MODULE = """<?xml version="1.0" encoding="UTF-8"?>
<profile>
  <UserAssignments><TopModelName>{name}</TopModelName><TargetClockPeriod>6.67</TargetClockPeriod></UserAssignments>
  <PerformanceEstimates>
    <SummaryOfTimingAnalysis><EstimatedClockPeriod>4.9</EstimatedClockPeriod></SummaryOfTimingAnalysis>
    <SummaryOfOverallLatency><Best-caseLatency>3</Best-caseLatency><Worst-caseLatency>99</Worst-caseLatency>
      <Interval-min>3</Interval-min><Interval-max>99</Interval-max></SummaryOfOverallLatency>
    <SummaryOfLoopLatency>
      <VITIS_LOOP_380_1><TripCount>1 ~ 4096</TripCount><Latency>0 ~ 8200</Latency><PipelineII>{ii}</PipelineII>
        <PipelineDepth>{depth}</PipelineDepth></VITIS_LOOP_380_1>
    </SummaryOfLoopLatency>
  </PerformanceEstimates>
  <AreaEstimates><Resources><BRAM_18K>4</BRAM_18K><DSP>1800</DSP><FF>90000</FF><LUT>80000</LUT><URAM>96</URAM></Resources></AreaEstimates>
</profile>
"""


def _reports(folder, period="5.405", up_ii=2):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "padless_encoder_csynth.xml").write_text(TOP.format(period=period))
    (folder / "p_up_csynth.xml").write_text(MODULE.format(name="p_up", ii=up_ii, depth=31))
    (folder / "p_qkv_1_csynth.xml").write_text(MODULE.format(name="p_qkv_1", ii=1, depth=17))
    return folder


def test_parse_csynth_xml_fields():
    r = parse_csynth_xml(TOP.format(period="5.405"))
    assert r["module"] == "padless_encoder" and r["part"] == "xcu280-fsvh2892-2L-e"
    assert r["target_period_ns"] == 6.67 and r["estimated_period_ns"] == 5.405
    assert r["estimated_fmax_MHz"] == pytest.approx(1000 / 5.405, abs=1e-3)
    assert r["latency"] == {"best": 12, "worst": None} and r["interval"] == {"min": 13, "max": None}
    assert r["resources"] == {"bram_18k": 1500, "dsp": 6100, "ff": 700000, "lut": 650000, "uram": 300}
    assert r["available"]["dsp"] == 9024
    outer, inner = r["loops"]
    assert outer["name"] == "VITIS_LOOP_512_1" and outer["trip_count"] == 6 and outer["ii"] is None
    assert inner["name"] == "VITIS_LOOP_512_1/VITIS_LOOP_520_2" and (inner["ii"], inner["depth"]) == (1, 7)


def test_parser_refuses_what_is_not_a_report():
    with pytest.raises(ProjectError, match="not a Vitis HLS csynth.xml"):
        parse_csynth_xml("<profile><nothing/></profile>")
    with pytest.raises(ProjectError, match="not a Vitis HLS csynth.xml"):
        parse_csynth_xml("this is not xml")
    bomb = '<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><profile>&b;</profile>'
    with pytest.raises(ProjectError, match="entities"):
        parse_csynth_xml(bomb)


def test_report_dir_processes(tmp_path):
    e = parse_report_dir(_reports(tmp_path / "r"))
    assert e["processes"] == {"p_up": {"ii": 2, "depth": 31}, "p_qkv": {"ii": 1, "depth": 17}}
    assert set(e["modules"]) == {"p_up", "p_qkv_1"} and e["source"].startswith("Vitis HLS csynth.xml")
    with pytest.raises(ProjectError, match="no padless_encoder_csynth.xml"):
        parse_report_dir(tmp_path)


def test_csynth_wins_in_profile_and_dse(tiny_project, tmp_path):
    """A project with a recorded csynth: profile runs at the csynth clock and says so; without one, at the
    board's default clock."""
    from padless.project import load_project
    from padless.runtime.profile import profile
    proj = tmp_path / "proj"
    shutil.copytree(tiny_project, proj)
    board = load_board("u280")
    before = profile(load_project(proj), lengths=[5, 17, 9], baselines=False)
    assert before["clock_mhz"] == board.clock_MHz and "not synthesized" in before["label"]
    _reports(proj / "hls" / "padless_encoder_prj" / "solution1" / "syn" / "report")
    entry = record(proj)
    p = load_project(proj)
    assert p.manifest["csynth"]["estimated_fmax_MHz"] == entry["estimated_fmax_MHz"]
    c = clock_of(p.manifest, board)
    assert c["synthesized"] and c["clock_MHz"] == pytest.approx(185.014, abs=1e-3)
    after = profile(p, lengths=[5, 17, 9], baselines=False)
    assert after["clock_mhz"] == pytest.approx(185.014, abs=1e-3) and "csynth" in after["clock_source"]
    assert "p_up (II 2)" in after["label"] and after["csynth"]["achieved_ii"]["p_up"] == 2
    assert after["csynth"]["cycles_at_achieved_ii"] >= after["cycles"]
    assert after["csynth"]["throughput_seq_s_at_achieved_ii"] <= after["throughput_seq_s"]
    assert after["cycles"] == before["cycles"]          # same kernel, same cycles; the clock differs
    assert after["throughput_seq_s"] == pytest.approx(before["throughput_seq_s"] * 185.014 / board.clock_MHz, rel=1e-4)
    # an estimate above the platform maximum is capped at it
    fast = dict(p.manifest, csynth=dict(p.manifest["csynth"], estimated_fmax_MHz=450.0, estimated_period_ns=2.2))
    assert clock_of(fast, board)["clock_MHz"] == board.clock_max_MHz
    # a regenerated kernel drops the old report: the default clock again
    from padless.codegen.hls import generate
    generate(load_project(proj), "u280")
    assert load_project(proj).manifest.get("csynth") is None
    assert not clock_of(load_project(proj).manifest, board)["synthesized"]


def test_dse_weighs_the_achieved_ii():
    """A csynth that reports FFN up at II 4: the DSE gives FFN up more parallelism than with the declared II."""
    from padless.schedule.dse import plan
    from padless.schedule.engine import EngineConfig
    model = dict(name="minilm", hidden_size=384, num_heads=12, head_dim=32, intermediate_size=1536, num_layers=6,
                 max_positions=512, max_seq_length=256)
    lens = [27] * 60 + [45] * 40
    declared = EngineConfig.from_dict(plan(model, "zcu104", {}, lens)["engine"])
    slow_up = EngineConfig.from_dict(plan(model, "zcu104", {}, lens, achieved_ii={"p_up": 4})["engine"])
    lanes = lambda c, m: c.folding[m][0] * c.folding[m][1]   # noqa: E731
    assert lanes(slow_up, "up") > lanes(declared, "up")
    # the override does not leak into the next plan
    assert EngineConfig.from_dict(plan(model, "zcu104", {}, lens)["engine"]).folding == declared.folding


def test_csynth_cli_without_a_report(tmp_path, capsys):
    from padless.csynth import main
    assert main([str(tmp_path)]) != 0
    assert capsys.readouterr().err.startswith("padless: error: ")
