import pytest

from padless.boards import Board, int8_peak_macs, list_boards, load_board
from padless.errors import PadlessError, UnknownBoardError


def test_all_boards_load_and_are_consistent():
    names = list_boards()
    assert names == sorted(["u200", "u250", "u280", "u55c", "zcu102", "zcu104", "kv260", "pynq-z2"])
    for n in names:
        b = load_board(n)
        assert isinstance(b, Board) and b.dsp > 0 and b.bram_36k > 0 and b.lut > 0 and b.ff >= b.lut
        assert b.flow == ("vitis" if n.startswith("u") else "vivado")
        assert b.memories and b.bandwidth_GBps > 0 and b.datasheet


def test_aliases_and_case():
    assert load_board("U280").name == "u280"
    assert load_board("alveo-u280").name == "u280"
    assert load_board("Alveo_U55C").name == "u55c"
    assert load_board("pynqz2").name == "pynq-z2"
    assert load_board("PYNQ-Z2").part.startswith("xc7z020")


def test_unknown_board_lists_known():
    with pytest.raises(UnknownBoardError) as e:
        load_board("vu19p")
    assert "u280" in str(e.value) and "pynq-z2" in str(e.value)
    assert isinstance(e.value, PadlessError)


def test_int8_peak():
    assert int8_peak_macs(load_board("u280")) == 2 * 9024 * 150e6          # the default (honest) clock
    assert int8_peak_macs(load_board("u280"), load_board("u280").clock_max_MHz) == 2 * 9024 * 300e6
    assert int8_peak_macs(load_board("pynq-z2")) == 220 * 100e6  # DSP48E1: one int8 MAC
    assert load_board("u280").platform == "xilinx_u280_gen3x16_xdma_1_202211_1"


def test_clocks_and_slrs():
    for n in list_boards():
        b = load_board(n)
        assert 0 < b.clock_MHz <= b.clock_max_MHz and b.clock_source   # every default clock cites a source
        if b.slrs:
            for k in ("lut", "ff", "dsp", "bram_36k", "uram"):          # per-SLR figures within the device's
                assert sum(s[k] for s in b.slrs) <= getattr(b, k)
            assert 0 <= b.memory_slr < len(b.slrs)
    assert [len(load_board(n).slrs) for n in ("u200", "u250", "u280", "u55c", "zcu104")] == [3, 4, 3, 3, 0]
    u280 = load_board("u280")
    assert (u280.clock_MHz, u280.clock_max_MHz) == (150.0, 300.0) and "AutoBridge" in u280.clock_source
