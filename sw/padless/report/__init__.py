"""HTML reports of compiled projects (``padless report DIR``): modeled scheduling figures and plots,
the plan (allocation, resources), sparsity and calibration, and the measured figures of ``make run``."""
from __future__ import annotations

from .html import MEASURED_FIELDS, RUN_JSON, build_report, flatten_run, read_run_json, render_report, report_paths

__all__ = ["MEASURED_FIELDS", "RUN_JSON", "build_report", "flatten_run", "read_run_json", "render_report", "report_paths"]
