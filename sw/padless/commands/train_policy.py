"""``padless train-policy PROJECT --layers 2 4 --keep 0.7``: train the TR-BERT token policy into a project.

Trains the float policy against the project's unpruned fp32 model on unlabelled real text (imitation
warm-up on the cascade attention ranking, then REINFORCE; :mod:`padless.sparse.policy`), quantizes it for
the project's integer model with thresholds calibrated for ``--keep`` on VADER tweets, writes
``PROJECT/policy.npz``, sets ``sparsity.tokens`` to ``{layers, keep, method: policy}`` in the manifest and
regenerates the project's HLS code (the kernel runs the policy: tokens.h tr_policy, its constants in config.h),
all in a staging copy that replaces the project in one rename (:func:`padless.staging.project_edit`).
"""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("train-policy", help="train the TR-BERT learned token-selection policy into a project",
                       description="Train TR-BERT's per-point token policy (Linear -> GELU -> Linear) by "
                                   "imitation of cascade pruning then REINFORCE against the unpruned fp32 "
                                   "model, quantize it to integers and save it as PROJECT/policy.npz.")
    p.add_argument("project", help="a compiled project folder (padless compile)")
    p.add_argument("--model", help="model recipe or transformers folder the project was compiled from "
                                   "(default: the manifest's model name)")
    p.add_argument("--layers", type=int, nargs="+", required=True, help="selection layers (each in 1..L-1)")
    p.add_argument("--keep", type=float, default=0.7, help="keep ratio per point (imitation labels, integer "
                                                           "thresholds); 1.0: threshold 0 (sigmoid >= 0.5)")
    p.add_argument("--imitation-steps", type=int, default=100)
    p.add_argument("--rl-steps", type=int, default=100)
    p.add_argument("--alpha", type=float, default=None,
                   help="REINFORCE reward weight of the kept fraction (initial value when adapted; "
                        "default: PolicyTrainConfig.alpha)")
    p.add_argument("--calib", type=int, default=128, help="VADER tweets for the integer calibration")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys
    from pathlib import Path

    import torch

    from ..data.datasets import load_dataset
    from ..errors import InputError
    from ..golden import quantize_input
    from ..models import resolve_model
    from ..project import load_project
    from ..reference import embed
    from ..sparse.policy import PolicyTrainConfig, install_policy, quantize_policy, train_policy

    if args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    if args.calib < 1:
        raise InputError(f"--calib must be a positive integer, got {args.calib}")
    torch.set_num_threads(args.threads)
    proj = load_project(args.project)
    spec, _ = resolve_model(args.model or proj.model.get("name"))
    if spec.hidden_size != proj.model.get("hidden_size") or spec.num_layers != proj.model.get("num_layers"):
        raise InputError(f"model {spec.name} does not match the project ({proj.model.get('name')}); pass --model")
    extra = {} if args.alpha is None else {"alpha": args.alpha}
    tc = PolicyTrainConfig(keep=args.keep, imitation_steps=args.imitation_steps, rl_steps=args.rl_steps,
                           seed=args.seed, **extra)
    say = None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    policy, record = train_policy(spec, args.layers, tc, log=say)
    tweets = load_dataset("vader-tweets", limit=4000).texts[-args.calib:]
    xs = [quantize_input(embed(proj.host, i), proj.quantized.input_scale)
          for i in proj.tokenize(tweets, truncate=True)]
    qp = quantize_policy(policy, proj.quantized, xs, keep=args.keep if args.keep < 1 else None, record=record)
    from ..staging import project_edit
    with project_edit(args.project) as staged:   # the project changes all at once, or not at all
        path = Path(args.project) / install_policy(staged, qp, args.keep).name
        if (proj.manifest.get("hls") or {}).get("engine"):
            # the kernel runs the policy: its constants are config.h ROMs, so the HLS project is regenerated
            from ..boards import load_board
            from ..codegen.bitstream import generate as generate_flow
            from ..codegen.hls import generate
            from ..project import record_generated
            board = load_board(proj.board)
            generate(load_project(staged), board)
            generate_flow(load_project(staged), board)
            record_generated(staged)
    if not args.quiet:
        pts = qp.record["calibration"]["points"]
        print(f"token policy for layers {qp.layers} trained in {record['seconds']:.0f} s; kept on calibration: "
              + ", ".join(f"layer {k} {v['kept']:.3f}" for k, v in pts.items()) + f"; -> {path}")
    return 0
