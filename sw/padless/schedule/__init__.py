"""Scheduling: the generated engine described in Python (engine), its cycle model (cost), the
design-space exploration (dse) and the length-aware order with its padded baselines (scheduler). See
docs/performance-model.md."""
from .dse import BoardTooSmallError, plan  # noqa: F401
from .engine import EngineConfig, engine_config, process_cycles, resources  # noqa: F401
from .scheduler import BASELINES, METHODS, compare, engine_order, flow_shop_starts  # noqa: F401
