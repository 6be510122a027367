"""``padless search``: the co-design search over board x attention sparsity x weight sparsity x precision.

Modules (one job each; docs/search.md):

- :mod:`.space`: the searched knobs, a YAML space file, a candidate's compile config and its key;
- :mod:`.power`: board list price and the power model (static + per-resource dynamic, estimated);
- :mod:`.objectives`: the cheap stage (DSE plan + cycle model + resource estimate) and the expensive stage
  (compile, timed C-simulation, fidelity on the selection split), and the project cache;
- :mod:`.study`: the Optuna engine (NSGA-II with constraints, journal file storage, resume, dedup) and the
  executors (a local process pool, or Ray tasks on a cluster);
- :mod:`.choice`: feasibility, the best configuration per board and the device choice;
- :mod:`.results`: ``search.json``, ``pareto.csv``, the HTML report and the terminal tables.
"""
