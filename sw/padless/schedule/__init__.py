"""Scheduling: the cycle model of the layer engine (cost), the design-space exploration (dse) and the
length-aware scheduler with its baselines (scheduler). See docs/performance-model.md."""
from .cost import STAGES, Allocation, CostParams, sequence_cycles, sequence_cycles_many  # noqa: F401
from .dse import BoardTooSmallError, plan  # noqa: F401
from .scheduler import BASELINES, METHODS, compare, flow_shop_starts, run_method, simulate  # noqa: F401
