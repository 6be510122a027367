"""Board list price and the power model of a generated engine (figures labelled *estimated*).

Power follows the form of AMD's Xilinx Power Estimator (UG440, "Using the Logic / DSP / BRAM sheets"): the
dynamic power of a resource is ``count x clock x toggle rate x a per-element coefficient``, on top of the
device's and board's static power::

    P (W) = static_W + sum_r  N_r * c_r * f_MHz * a * 1e-6          (c_r in uW per MHz per element)
    E (uJ / sequence) = P / throughput_seq_s * 1e6

with ``N_r`` the resources the DSE plan uses (DSP slices, 36 Kb block RAMs, 288 Kb UltraRAMs, LUTs),
``f`` the kernel clock, and ``a`` the activity: the mean busy fraction of the engine's dataflow processes
in the timed C-simulation (a process that waits does not toggle its DSPs). Before the simulation (the
cheap stage) ``a = 1`` gives an upper bound. The coefficients and static figures are in each board file's
``power:`` section with their source; they are estimates, not a measurement, and every energy figure is
labelled ``estimated``.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml

from ..errors import UnknownBoardError

__all__ = ["board_facts", "power_w", "energy_uj", "LABEL", "RESOURCES"]

#: Label of every power and energy figure.
LABEL = "estimated (XPE-form power model: static + per-resource dynamic at the clock and simulated activity)"
#: Resources the model prices (keys of the plan's ``resources`` and of ``dynamic_uW_per_MHz``).
RESOURCES = ("dsp", "bram_36k", "uram", "lut")


@lru_cache(maxsize=None)
def board_facts(board: str) -> dict:
    """``{"price": {"list_USD", "source"}, "power": {"static_W", "dynamic_uW_per_MHz", "source"}}`` of a
    board, from the ``price:`` and ``power:`` sections of its YAML file.

    Raises UnknownBoardError for an unknown board or a file without the two sections (the search needs
    them to choose a device and to estimate energy)."""
    from ..boards import load_board
    name = load_board(board).name
    text = resources.files("padless.boards").joinpath(f"{name}.yaml").read_text()
    data = yaml.safe_load(text) or {}
    price, power = data.get("price"), data.get("power")
    if not isinstance(price, dict) or not isinstance(power, dict):
        raise UnknownBoardError(f"board {name} has no price: / power: section in its board file; the search "
                                "needs both (list price with a source; static W and dynamic coefficients)")
    dyn = power.get("dynamic_uW_per_MHz") or {}
    missing = [r for r in RESOURCES if r not in dyn] + [k for k in ("static_W", "source") if k not in power] \
        + [k for k in ("list_USD", "source") if k not in price]
    if missing:
        raise UnknownBoardError(f"board {name}: price/power sections lack {', '.join(missing)}")
    return {"price": {"list_USD": float(price["list_USD"]), "source": str(price["source"])},
            "power": {"static_W": float(power["static_W"]),
                      "dynamic_uW_per_MHz": {r: float(dyn[r]) for r in RESOURCES},
                      "source": str(power["source"])}}


def power_w(board: str, used: dict, clock_MHz: float, activity: float = 1.0) -> dict:
    """Estimated power of an engine on ``board``.

    Args:
        used: resources in use, ``{"dsp": n, "bram_36k": n, "uram": n, "lut": n}`` (plain counts, or the
            plan's ``{"dsp": {"used": n, ...}}`` entries).
        clock_MHz: kernel clock (MHz).
        activity: mean busy fraction of the engine's processes in [0, 1] (1: the upper bound).

    Returns:
        ``{"static_W", "dynamic_W", "total_W", "by_resource_W" {r: W}, "activity", "label"}``.
    Raises:
        ValueError: a negative count, clock or an activity outside [0, 1].
    """
    if not 0.0 <= float(activity) <= 1.0:
        raise ValueError(f"activity {activity} outside [0, 1]")
    if float(clock_MHz) <= 0:
        raise ValueError(f"clock {clock_MHz} MHz must be > 0")
    facts = board_facts(board)["power"]
    by = {}
    for r in RESOURCES:
        n = used.get(r, 0)
        n = float(n["used"] if isinstance(n, dict) else n)
        if n < 0:
            raise ValueError(f"{r} count {n} < 0")
        by[r] = n * facts["dynamic_uW_per_MHz"][r] * float(clock_MHz) * float(activity) * 1e-6
    dyn = sum(by.values())
    return {"static_W": facts["static_W"], "dynamic_W": dyn, "total_W": facts["static_W"] + dyn,
            "by_resource_W": by, "activity": float(activity), "label": LABEL}


def energy_uj(power_total_w: float, throughput_seq_s: float) -> float:
    """Energy per sequence (uJ) of a board drawing ``power_total_w`` while running ``throughput_seq_s``
    sequences per second. Raises ValueError for a throughput <= 0."""
    if throughput_seq_s <= 0:
        raise ValueError(f"throughput {throughput_seq_s} seq/s must be > 0")
    return float(power_total_w) / float(throughput_seq_s) * 1e6
