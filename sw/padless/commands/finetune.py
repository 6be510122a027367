"""``padless finetune MODEL --config CFG --out DIR [--steps N] [--resume]``: sparse distillation on real text.

Distils the dense fp32 MODEL (teacher) into a student with the config's bank-balanced weight sparsity and
top-k attention (docs/finetune.md) and writes a transformers folder that ``padless compile DIR`` accepts
(it reads the sparsity, and the calibration when the config names one, from ``DIR/padless_sparsity.json``).
"""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("finetune", help="distil a model into a sparse student (weights / top-k attention) on real text",
                       description="Sparse distillation: bank-balanced weight masks (SparseGPT one-shot, or "
                                   "a cubic magnitude schedule) and 4-bit top-k attention, trained to match "
                                   "the dense fp32 model's hidden states and sentence embeddings on "
                                   "unlabelled real text; optional progressive module replacement and "
                                   "quantization-aware final steps.")
    p.add_argument("model", help="recipe name (minilm-l6, tiny) or a transformers model folder")
    p.add_argument("--config", help="YAML with weights / attention / train / calibration sections (docs/finetune.md)")
    p.add_argument("--out", required=True, help="output folder (student model, tokenizer, checkpoint)")
    p.add_argument("--steps", type=int, help="training steps (overrides train.steps; sizes the schedule)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in OUT (checkpoint.safetensors + checkpoint.json)")
    p.add_argument("--stop-after", type=int, help="stop after this many steps (checkpointed; resume later)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..errors import InputError
    from ..finetune import finetune
    if args.steps is not None and args.steps < 1:
        raise InputError(f"--steps must be a positive integer, got {args.steps}")
    if args.stop_after is not None and args.stop_after < 1:
        raise InputError(f"--stop-after must be a positive number of steps, got {args.stop_after} (leave it out "
                         "to train to the end)")
    if args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    res = finetune(args.model, args.config, args.out, steps=args.steps, resume=args.resume,
                   stop_after=args.stop_after, progress=not args.quiet)
    if not args.quiet:
        state = "finished" if res["finished"] else "stopped (resume with --resume)"
        loss = "" if res["loss_first"] is None else f"; loss {res['loss_first']:.4f} -> {res['loss_last']:.4f}"
        print(f"finetune {state} after {res['steps']} steps in {res['seconds']:.0f} s; weight sparsity "
              f"{res['sparsity']:.3f}{loss}; -> {res['out']}")
    return 0
