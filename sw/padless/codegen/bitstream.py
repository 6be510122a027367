"""Bitstream flow of a generated project: ``make -C DIR bitstream`` / ``padless bitstream DIR``.

Writes, from the board file and the kernel the HLS code generator emitted (``hls/``):

- Alveo (``flow: vitis``): ``bitstream/connectivity.cfg`` for ``v++ -l`` mapping each m_axi bundle of the
  kernel to an HBM pseudo channel or DDR bank, the ports that receive one host buffer to one bank (UG1393;
  :data:`HOST_BUFFERS`), and setting the kernel clock; the flow exports
  the kernel as ``.xo`` (``vitis_hls -f run_hls.tcl``), links ``v++ -l --platform <board.platform>`` ->
  ``deploy/padless_encoder.xclbin``;
- Zynq (``flow: vivado``): ``bitstream/zynq_bd.tcl``, a Vivado block design (PS with the board preset, the
  HLS IP from the ``ip_catalog`` export, AXI interconnect for s_axi_control and the m_axi masters to
  separate PS HP ports (the weights bundle alone), the PL clock, the address map) run with ``vivado -mode batch`` -> ``deploy/padless_encoder.bit``
  + ``.hwh`` for ``pynq.Overlay``;
- ``bitstream.mk``: the ``bitstream`` target (included by the project Makefile, or run with
  ``make -f bitstream.mk``). Each step checks its tool first and stops naming it (exit 3).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import jinja2

from .. import __version__, fsutil
from ..errors import ProjectError, ToolMissingError
from .escape import checked_name, install

TEMPLATES = Path(__file__).parent / "templates" / "bitstream"

# Zynq processing systems: (IP VLNV, board automation rule, control master port, clock property, HP slave
# ports as (port, enable property, data width property)).
_PS = {
    "zynq_ultrascale_plus": ("xilinx.com:ip:zynq_ultra_ps_e:3.4", "xilinx.com:bd_rule:zynq_ultra_ps_e",
                             "M_AXI_HPM0_FPD", "CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ",
                             [(f"S_AXI_HP{i}_FPD", f"CONFIG.PSU__USE__S_AXI_GP{i + 2}",
                               f"CONFIG.PSU__SAXIGP{i + 2}__DATA_WIDTH") for i in range(4)]),
    "zynq_7000": ("xilinx.com:ip:processing_system7:5.5", "xilinx.com:bd_rule:processing_system7",
                  "M_AXI_GP0", "CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ",
                  [(f"S_AXI_HP{i}", f"CONFIG.PCW_USE_S_AXI_HP{i}", f"CONFIG.PCW_S_AXI_HP{i}_DATA_WIDTH")
                   for i in range(4)]),
}


def hp_ports(bundles: list[str], ports: int = 4) -> list[tuple[str, int]]:
    """(bundle, HP port index) pairs: the kernel's last bundle (the weights, streamed per layer on Zynq)
    gets the last HP port alone; the activation and descriptor bundles share the others round robin."""
    if len(bundles) <= ports:
        return [(b, i) for i, b in enumerate(bundles)]
    return [(b, i % (ports - 1)) for i, b in enumerate(bundles[:-1])] + [(bundles[-1], ports - 1)]


def m_axi_bundles(kernel_source: str) -> list[str]:
    """The m_axi bundles of a kernel, in first-use order, from its ``#pragma HLS INTERFACE m_axi`` lines
    (a port without ``bundle=`` uses Vitis HLS's default ``gmem``)."""
    out = []
    for m in re.finditer(r"#pragma\s+HLS\s+INTERFACE\s+m_axi\b([^\n]*)", kernel_source, flags=re.I):
        b = re.search(r"bundle\s*=\s*(\w+)", m.group(1))
        name = b.group(1) if b else "gmem"
        if name not in out:
            out.append(name)
    return out


#: The host's buffers and the kernel's m_axi ports each is given (the pynq backend and the simulated device
#: bind them so): one activation buffer to the three activation ports (the kernel reads layer l's half and
#: writes the other half of the same buffer), the descriptors, the weights image.
HOST_BUFFERS = {"act": ("act_rd", "act_res", "act_wr"), "desc": ("desc",), "weights": ("weights",)}


def m_axi_ports(kernel_source: str) -> dict[str, str]:
    """``{port: bundle}`` of a kernel's ``#pragma HLS INTERFACE m_axi port=... bundle=...`` lines (a port
    without ``bundle=`` is in Vitis HLS's default ``gmem``)."""
    out = {}
    for m in re.finditer(r"#pragma\s+HLS\s+INTERFACE\s+m_axi\b([^\n]*)", kernel_source, flags=re.I):
        p = re.search(r"port\s*=\s*(\w+)", m.group(1))
        b = re.search(r"bundle\s*=\s*(\w+)", m.group(1))
        if p:
            out[p.group(1)] = b.group(1) if b else "gmem"
    return out


def memory_banks(board, bundles: list[str], ports: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(bundle, v++ bank) pairs for ``v++ --connectivity.sp``.

    XRT binds a buffer to a kernel argument only when the buffer sits in a memory the argument's port is
    connected to (UG1393, "Mapping Kernel Ports to Memory"; XRT's "Memory bank and kernel argument
    compatibility"): every bundle whose port receives one host buffer (:data:`HOST_BUFFERS`, ports mapped to
    bundles by ``ports`` = :func:`m_axi_ports`) goes to that buffer's one bank. Buffers take the banks in
    order, round robin: ``HBM[i]`` pseudo channels on HBM boards, ``DDR[i]`` on DDR boards; a bundle with no
    known buffer takes the next bank. Without ``ports`` each bundle is its own buffer. Raises ProjectError for
    a board with no off-chip memory for v++."""
    mem = next((m for m in board.memories if m.kind.upper().startswith("HBM")), None)
    kind = "HBM"
    if mem is None:
        mem = next((m for m in board.memories if m.kind.upper().startswith("DDR")), None)
        kind = "DDR"
    if mem is None:
        raise ProjectError(f"board {board.name} has no HBM or DDR memory for the v++ link")
    buffer_of = {}
    if ports:
        for buf, names in HOST_BUFFERS.items():
            for n in names:
                if n in ports:
                    buffer_of[ports[n]] = buf
    slots: dict[str, int] = {}
    out = []
    for b in bundles:
        key = buffer_of.get(b, "bundle:" + b)
        if key not in slots:
            slots[key] = len(slots)
        out.append((b, f"{kind}[{slots[key] % mem.banks}]"))
    return out


def read_connectivity(path) -> dict[str, str]:
    """``{bundle: memory}`` of a ``connectivity.cfg``'s ``sp=<kernel>_1.m_axi_<bundle>:<memory>`` lines."""
    out = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"\s*sp\s*=\s*\w+\.m_axi_(\w+)\s*:\s*([A-Za-z]+\[[0-9:]+\])\s*$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def port_memories(project) -> dict[str, str]:
    """``{port: memory}`` (``"HBM[0]"``, ``"DDR[1]"``) of the project's kernel from its
    ``bitstream/connectivity.cfg`` (what ``v++ -l`` links); ``{}`` for a project without one (Zynq boards:
    every port reaches the PS DDR)."""
    root = Path(project.path)
    cfg = root / "bitstream" / "connectivity.cfg"
    top = (project.manifest.get("hls") or {}).get("top") or "padless_encoder"
    src = root / "hls" / f"{checked_name(top, 'the kernel top (manifest hls.top)')}.cpp"
    if not cfg.is_file() or cfg.is_symlink() or not src.is_file():
        return {}
    banks = read_connectivity(cfg)
    return {p: banks[b] for p, b in m_axi_ports(src.read_text()).items() if b in banks}


def buffer_memories(project) -> dict[str, str]:
    """``{host buffer: memory}`` (:data:`HOST_BUFFERS`) from :func:`port_memories`. Raises ProjectError when
    the ports one buffer is given to sit on different memories (XRT could not bind it)."""
    pm = port_memories(project)
    out = {}
    for buf, ports in HOST_BUFFERS.items():
        mems = sorted({pm[p] for p in ports if p in pm})
        if len(mems) > 1:
            raise ProjectError(f"{Path(project.path) / 'bitstream' / 'connectivity.cfg'} connects the ports "
                               f"{', '.join(ports)} (one host buffer) to {', '.join(mems)}: XRT binds a buffer to one "
                               "memory; regenerate it with `padless bitstream DIR`")
        if mems:
            out[buf] = mems[0]
    return out


def generate(project, board) -> dict:
    """Write ``bitstream.mk`` and ``bitstream/`` into ``project.path`` for ``board`` (name or Board).

    Returns ``{"flow", "kernel", "export", "files"}``. Raises ProjectError when the project has no
    generated HLS kernel (``padless compile`` with the HLS code generator writes it)."""
    from ..boards import load_board
    board = load_board(board) if isinstance(board, str) else board
    root = Path(project.path)
    hls = project.manifest.get("hls") or {}
    # values read back from the project folder are checked to be plain names, never escaped into a file
    kernel = checked_name(hls.get("top") or "padless_encoder", "the kernel top (manifest hls.top)")
    src = root / "hls" / f"{kernel}.cpp"
    tcl = root / "hls" / "run_hls.tcl"
    if not src.is_file() or not tcl.is_file():
        raise ProjectError(f"{root} has no generated HLS kernel ({src.name}, run_hls.tcl); recompile it with "
                           f"`padless compile MODEL --board {board.name} --out {root}`")
    ext = "xo" if board.flow == "vitis" else "zip"
    m = re.search(r"export_design\s+-format\s+\S+\s+-output\s+(\S+\." + ext + r")", tcl.read_text())
    if m is None:
        raise ProjectError(f"{tcl} exports no .{ext} for the {board.flow} flow of {board.name}: it was generated "
                           "for another board; recompile the project for this board")
    export = checked_name(m.group(1), f"the export file named in {tcl.name}", pattern="file")
    bundles = m_axi_bundles(src.read_text())
    env = install(jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                                     keep_trailing_newline=True))
    files = ["bitstream.mk"]
    clk = (hls.get("engine") or {}).get("clock_MHz", board.clock_MHz)
    if isinstance(clk, bool) or not isinstance(clk, (int, float)) or not 10 <= float(clk) <= 1000:
        raise ProjectError(f"{root}: the manifest's kernel clock hls.engine.clock_MHz = {clk!r} is not a clock "
                           "between 10 and 1000 MHz; recompile the project")
    common = {"version": __version__, "board": board, "kernel": kernel, "export": export, "clock_MHz": float(clk)}
    if board.flow == "vitis":
        tools = ["vitis_hls", "v++"]
        banks = memory_banks(board, bundles, m_axi_ports(src.read_text()))
        text = env.get_template("connectivity.cfg.j2").render(banks=banks, memory=banks[0][1].split("[")[0], **common)
        fsutil.write_text(root / "bitstream" / "connectivity.cfg", text, root)
        files.append("bitstream/connectivity.cfg")
    else:
        if board.family not in _PS:
            raise ProjectError(f"board {board.name} (family {board.family}) has no Zynq processing system preset")
        vlnv, rule, master, clk_prop, hps = _PS[board.family]
        tools = ["vitis_hls", "vivado"]
        pairs = hp_ports(bundles, len(hps))
        used = sorted({i for _, i in pairs})
        from ..schedule.engine import axi_bytes
        width = 8 * axi_bytes(board)   # the kernel's m_axi width = the HP port's data width
        props = [(clk_prop, "{%g}" % float(clk))]
        for i in used:
            props += [(hps[i][1], "{1}"), (hps[i][2], "{%d}" % width)]
        text = env.get_template("zynq_bd.tcl.j2").render(
            ip_zip=f"hls/{export}", ps_vlnv=vlnv, ps_rule=rule, ps_master=master, ps_props=props,
            bundles=[(b, hps[i][0]) for b, i in pairs], **common)
        fsutil.write_text(root / "bitstream" / "zynq_bd.tcl", text, root)
        files.append("bitstream/zynq_bd.tcl")
    fsutil.write_text(root / "bitstream.mk", env.get_template("bitstream.mk.j2").render(tools=tools, **common), root)
    return {"flow": board.flow, "kernel": kernel, "export": export, "files": files, "tools": tools}


def required_tools(board) -> list[str]:
    """Vendor tools the board's flow needs, in order."""
    return ["vitis_hls", "v++"] if board.flow == "vitis" else ["vitis_hls", "vivado"]


def build(project_dir, board=None, dry_run: bool = False) -> subprocess.CompletedProcess:
    """Run ``make -f bitstream.mk bitstream`` in the project (``-n`` with ``dry_run``), generating the flow
    first when missing. Raises ToolMissingError naming the first missing vendor tool (not for dry runs),
    ProjectError for a project without an HLS kernel."""
    from ..boards import load_board
    from ..project import load_project
    project = load_project(project_dir)
    board = load_board(board or project.board)
    root = Path(project.path)
    if not (root / "bitstream.mk").is_file():
        generate(project, board)
    if shutil.which("make") is None:
        raise ToolMissingError("make not found on PATH: install it (apt-get install make)")
    if not dry_run:
        for tool in required_tools(board):
            if shutil.which(tool) is None:
                raise ToolMissingError(
                    f"{tool} not found on PATH: the {board.name} bitstream flow needs "
                    f"{' and '.join(required_tools(board))} (AMD Vitis / Vivado 2022.2 or later; source "
                    f"settings64.sh). Everything else (csim, the simulated device) runs without them; "
                    f"`make -n -C {root} -f bitstream.mk bitstream` shows the commands")
    cmd = ["make", "-C", str(root), "-f", "bitstream.mk", "bitstream"] + (["-n"] if dry_run else [])
    res = subprocess.run(cmd, text=True, capture_output=dry_run)
    if not dry_run and res.returncode == 0:
        from ..csynth import find_report_dir, record
        if find_report_dir(root) is not None:   # Vitis ran csynth_design: its figures win from now on
            record(root)
    return res
