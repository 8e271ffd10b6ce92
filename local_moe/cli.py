"""`bulkhead moe ...`: serve a checkpoint, train the embedded demo model, or prebuild the native kernels.

serve --model DIR [--host H] [--port P] [--device D] [--dtype T] [--quantize int8] [--max-batch N] [--max-seq N]
train-demo --out DIR [--steps N] [--no-balance] [--seed S]
build-kernels [--out DIR] [--cxx CXX]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import uvicorn

from local_moe import native
from local_moe.runtime import open_engine
from local_moe.server import create_app
from local_moe.train_demo import train_demo


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bulkhead moe", description="local Mixture-of-Experts runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve a checkpoint over an OpenAI-compatible HTTP API")
    serve.add_argument("--model", required=True, help="Hugging Face checkpoint directory")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8100)
    serve.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    serve.add_argument(
        "--dtype",
        default=None,
        help="float32 or bfloat16 (default: bf16 on cuda and on CPUs with AVX-512 BF16 or AMX, else fp32)",
    )
    serve.add_argument(
        "--quantize",
        choices=["int8"],
        default=None,
        help="int8: linear and expert weights as int8 with per-row scales (CPU only; half the bytes per token)",
    )
    serve.add_argument("--max-batch", type=int, default=8)
    serve.add_argument("--max-seq", type=int, default=2048)
    serve.add_argument("--name", default=None, help="model id to report (default: directory name)")
    train = sub.add_parser("train-demo", help="train the small demo MoE on the shipped corpus")
    train.add_argument("--out", required=True)
    train.add_argument("--steps", type=int, default=None)
    train.add_argument("--no-balance", action="store_true", help="disable aux-loss-free bias balancing")
    train.add_argument("--seed", type=int, default=0)
    build = sub.add_parser(
        "build-kernels", help="build the native decode kernels for every x86-64 level (for hosts without a compiler)"
    )
    build.add_argument("--out", default=None, help="folder (default: local_moe/prebuilt)")
    build.add_argument("--cxx", default="g++")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        try:
            engine = open_engine(
                args.model,
                device=args.device,
                dtype=args.dtype,
                max_batch=args.max_batch,
                max_seq=args.max_seq,
                quantize=args.quantize,
            )
        except (OSError, ValueError) as exc:  # no checkpoint, or int8 where no int8 kernel runs
            print(f"bulkhead moe serve: {exc}", file=sys.stderr)
            return 2
        name = args.name or Path(args.model).resolve().name
        weights = f", {args.quantize} weights" if args.quantize else ""
        print(
            f"serving {name} on http://{args.host}:{args.port}/v1"
            f" ({engine.model.device}, {engine.model.dtype}{weights})",
            flush=True,
        )
        # which matmul kernel each weight shape uses here, and the timings that chose it (kernels.py)
        for choice in engine.model.kernel_choices:
            print(f"kernel {choice.describe()}", flush=True)
        try:
            uvicorn.run(create_app(engine, name), host=args.host, port=args.port, log_level="warning")
        finally:
            engine.close()
        return 0
    if args.command == "build-kernels":
        try:
            for path in native.build_prebuilt(Path(args.out) if args.out else native.PREBUILT_DIR, args.cxx):
                print(path)
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            print(f"bulkhead moe build-kernels: {exc}", file=sys.stderr)
            return 2
        return 0
    report = train_demo(Path(args.out), steps=args.steps, balance=not args.no_balance, seed=args.seed)
    print(
        f"wrote {args.out}: {report['params_m']:.1f}M parameters, final loss {report['final_loss']:.3f}, "
        f"expert-load CV {report['load_cv']:.3f} (bias balancing {'on' if report['balance'] else 'off'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
