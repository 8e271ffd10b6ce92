"""local_moe vs transformers on one realistic-shape MoE checkpoint.

    .venv/bin/python bench/moe.py            # 8 layers, hidden 1024, 32 experts, top-4, expert width 512
    .venv/bin/python bench/moe.py --quick    # a smaller shape and fewer tokens, for a smoke run
    .venv/bin/python bench/moe.py --dispatch # grouped_mm vs per-expert slices at decode and prefill sizes

Prints prefill tokens/s (512-token prompt), decode tokens/s at batch 1 and 8, and peak memory for
each runtime, with the ratio ours/transformers. Each runtime runs in its own process so peak memory
(ru_maxrss on CPU, max_memory_allocated on CUDA) is its own, with torch's default thread count (the
table prints both processes' counts). Both run greedy decoding on the same device; transformers uses
its own `generate`. On CPU the default runs both fp32 and bf16 and prints one same-dtype table per
dtype, then the headline: ours in bf16 against transformers in its fastest dtype for each metric
(`--dtype` runs one dtype only). Where CUDA exists it also prints the fraction of the memory-bandwidth
ceiling: measured decode tok/s at batch 1 divided by (measured copy bandwidth / active weight bytes
per token). `--no-pack` keeps local_moe's CPU weights unpacked (plain F.linear), to show what packing
(local_moe/packing.py) buys.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

FULL = dict(
    num_hidden_layers=8,
    hidden_size=1024,
    num_attention_heads=16,
    num_key_value_heads=4,
    head_dim=64,
    num_experts=32,
    num_experts_per_tok=4,
    moe_intermediate_size=512,
    intermediate_size=2048,
    vocab_size=32000,
    norm_topk_prob=True,
)
QUICK = FULL | dict(num_hidden_layers=4, vocab_size=8000)


def build_checkpoint(path: Path, shape: dict) -> None:
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    if (path / "config.json").exists():
        return
    torch.manual_seed(0)
    config = Qwen3MoeConfig(
        **shape,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        initializer_range=0.02,
        eos_token_id=None,
        bos_token_id=None,
        pad_token_id=None,
    )
    Qwen3MoeForCausalLM(config).save_pretrained(path)


def _peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def worker(
    kind: str,
    path: Path,
    prompt_len: int,
    new_tokens: int,
    repeats: int,
    device: str | None,
    dtype: str,
    hf_experts: str | None = None,
    pack: bool | None = None,
) -> dict:
    from local_moe.loader import pick_device

    dev, dt = pick_device(device, dtype)
    torch.manual_seed(0)
    vocab = json.loads((path / "config.json").read_text())["vocab_size"]
    long_prompt = torch.randint(0, vocab, (1, prompt_len), device=dev)
    short = torch.randint(0, vocab, (8, 32), device=dev)
    t0 = time.perf_counter()
    if kind == "hf":
        from transformers import AutoModelForCausalLM

        extra = {"experts_implementation": hf_experts} if hf_experts else {}
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dt, **extra).to(dev).eval()
        model.generation_config.eos_token_id = None
        model.generation_config.pad_token_id = 0

        def prefill():
            with torch.inference_mode():
                model(long_prompt, use_cache=True, logits_to_keep=1)
            _sync(dev)

        def gen(batch: int, n: int):
            ids = short[:batch]
            with torch.inference_mode():
                model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=n,
                    min_new_tokens=n,
                    do_sample=False,
                )
            _sync(dev)
    else:
        from local_moe.cache import KVCache, Step
        from local_moe.generate import greedy_generate
        from local_moe.loader import load_model

        model = load_model(path, device=dev, dtype=dt, pack=pack)
        caches = {b: KVCache(model.args, b, max(prompt_len, 32 + new_tokens) + 1, dev, dt) for b in (1, 8)}

        def prefill():
            with torch.inference_mode():
                model(long_prompt, step=Step.build(caches[1], [0], [0], prompt_len), last_only=True)
            _sync(dev)

        def gen(batch: int, n: int):
            greedy_generate(model, short[:batch].tolist(), n, cache=caches[batch])
            _sync(dev)

    load_s = time.perf_counter() - t0
    experts_impl = getattr(model.config, "_experts_implementation", None) if kind == "hf" else None
    prefill()  # warm-up
    result = {
        "kind": kind,
        "load_s": round(load_s, 2),
        "device": str(dev),
        "dtype": str(dt).replace("torch.", ""),
        "experts_impl": experts_impl,
        "threads": torch.get_num_threads(),
    }
    result["prefill_tok_s"] = prompt_len / _best(prefill, repeats)
    for batch in (1, 8):
        gen(batch, 2)  # warm-up
        first = _best(lambda b=batch: gen(b, 1), repeats)  # prefill + first token
        total = _best(lambda b=batch: gen(b, new_tokens), repeats)
        result[f"decode_b{batch}_tok_s"] = batch * (new_tokens - 1) / max(total - first, 1e-9)
    result["peak_mem_gb"] = _peak_bytes(dev) / 1e9
    return result


def active_bytes_per_token(path: Path, bytes_per_param: int) -> int:
    """Weights one decode token must read: everything but the unchosen experts (and one embedding row)."""
    from local_moe.config import load_config

    a = load_config(path)
    total = a.hidden_size * a.vocab_size  # lm_head
    for moe_layer in a.moe_layers:
        qkv = a.hidden_size * (a.num_heads + 2 * a.num_kv_heads) * a.head_dim
        total += qkv + a.num_heads * a.head_dim * a.hidden_size + 2 * a.hidden_size
        if moe_layer:
            total += a.num_experts * a.hidden_size + a.top_k * 3 * a.hidden_size * a.moe_intermediate_size
        else:
            total += 3 * a.hidden_size * a.intermediate_size
    return total * bytes_per_param


def copy_bandwidth_gbs() -> float:
    x = torch.empty(1 << 28, dtype=torch.float32, device="cuda")  # 1 GiB
    y = torch.empty_like(x)
    y.copy_(x)
    torch.cuda.synchronize()
    t = _best(lambda: (y.copy_(x), torch.cuda.synchronize()), 5)
    return 2 * x.numel() * 4 / t / 1e9


def dispatch_bench(path: Path, device: str | None, dtype: str) -> None:
    """Time one MoE layer's expert computation with each dispatch mode at several row counts: unpacked
    grouped_mm and per-expert slices, and (where packing works, i.e. CPU) packed per-expert slices.
    Every layer's experts run in turn, so weights come from memory as in a real step, not from cache."""
    from local_moe import moe
    from local_moe.loader import load_model, pick_device
    from local_moe.packing import can_pack

    dev, dt = pick_device(device, dtype)
    plain = load_model(path, device=dev, dtype=dt, pack=False)
    packed = load_model(path, device=dev, dtype=dt) if can_pack(dev, dt) else None
    modes = ["grouped", "slices"] + (["packed"] if packed is not None else [])
    k = plain.args.top_k
    print(f"{dtype}, ms per layer")
    print(f"{'tokens':>7} {'rows':>6}" + "".join(f" {m:>9}" for m in modes) + "  winner")
    for tokens in (1, 2, 4, 8, 16, 32, 64, 128, 512):
        xs = [torch.randn(tokens, plain.args.hidden_size, device=dev, dtype=dt) for _ in plain.layers]
        times = {}
        with torch.inference_mode():
            routes = [b.mlp.gate(x) for b, x in zip(plain.layers, xs, strict=True)]
            for mode in modes:
                model = packed if mode == "packed" else plain
                moe.DISPATCH_MODE = "auto" if mode == "packed" else mode
                layers = [b.mlp.experts for b in model.layers if b.is_moe]

                def run(layers=layers, xs=xs, routes=routes):
                    for experts, x, (w, i, _) in zip(layers, xs, routes, strict=True):
                        experts(x, w, i)
                    _sync(dev)

                run()
                times[mode] = _best(run, 20 if tokens < 64 else 5) * 1e3 / len(layers)
        winner = min(times, key=times.get)
        print(f"{tokens:>7} {tokens * k:>6}" + "".join(f" {times[m]:>9.3f}" for m in modes) + f"  {winner}")
    moe.DISPATCH_MODE = "auto"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--dir", type=Path, default=None, help="checkpoint cache directory")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None)
    p.add_argument("--prompt", type=int, default=512)
    p.add_argument("--new-tokens", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--rounds", type=int, default=None, help="alternating runs of each runtime")
    p.add_argument("--dispatch", action="store_true")
    p.add_argument(
        "--hf-experts", default=None, help="transformers experts_implementation (default: its own default)"
    )
    p.add_argument("--no-pack", action="store_true", help="local_moe without packed CPU weights")
    p.add_argument("--worker", choices=["hf", "ours"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    shape = QUICK if args.quick else FULL
    path = args.dir or Path("/tmp") / f"bulkhead-bench-moe-{'quick' if args.quick else 'full'}"
    new_tokens = args.new_tokens or (12 if args.quick else 32)
    repeats = args.repeats or (1 if args.quick else 2)
    rounds = args.rounds or (1 if args.quick else 2)
    cuda = torch.cuda.is_available() and args.device != "cpu"
    dtypes = [args.dtype] if args.dtype else (["bfloat16"] if cuda else ["float32", "bfloat16"])
    pack = False if args.no_pack else None
    if args.worker:
        result = worker(
            args.worker, path, args.prompt, new_tokens, repeats, args.device, dtypes[0], args.hf_experts, pack
        )
        print(json.dumps(result))
        return 0
    build_checkpoint(path, shape)
    if args.dispatch:
        dispatch_bench(path, args.device, dtypes[-1])
        return 0
    desc = ", ".join(
        f"{k}={v}"
        for k, v in shape.items()
        if k
        in ("num_hidden_layers", "hidden_size", "num_experts", "num_experts_per_tok", "moe_intermediate_size")
    )
    print(
        f"checkpoint: qwen3_moe {desc}; prompt {args.prompt}, {new_tokens} new tokens, best of "
        f"{repeats}x{rounds}; local_moe {'unpacked' if args.no_pack else 'packed where supported'}"
    )
    results = {dt: run_pair(args, path, new_tokens, repeats, rounds, dt) for dt in dtypes}
    for dt, (hf, ours) in results.items():
        print(
            f"\n{dt}: device {ours['device']}, threads transformers {hf['threads']} / local_moe "
            f"{ours['threads']}; transformers experts_implementation={hf.get('experts_impl')}"
        )
        print_table(hf, ours, {k: dt for k in METRICS}, dt, memory=True)
        if ours["device"].startswith("cuda"):
            per_token = active_bytes_per_token(path, 2 if ours["dtype"] in ("bfloat16", "float16") else 4)
            bw = copy_bandwidth_gbs()
            ceiling = bw * 1e9 / per_token
            print(
                f"bandwidth ceiling: {per_token / 1e6:.1f} MB active weights/token, copy bandwidth "
                f"{bw:.0f} GB/s -> {ceiling:.0f} tok/s; batch-1 decode reaches "
                f"{ours['decode_b1_tok_s'] / ceiling:.1%} (transformers {hf['decode_b1_tok_s'] / ceiling:.1%})"
            )
    if len(results) > 1 and "bfloat16" in results:
        # The headline: each runtime at its best. For transformers on CPU that is fp32 (its bf16 is slower).
        ours = results["bfloat16"][1]
        best_hf, hf_dtype = {}, {}
        for key in METRICS:
            dt = max(results, key=lambda d: results[d][0][key])
            best_hf[key], hf_dtype[key] = results[dt][0][key], dt
        print("\nheadline: local_moe bfloat16 vs transformers in its fastest dtype per metric")
        print_table(best_hf, ours, hf_dtype, "bfloat16")
    return 0


METRICS = ("prefill_tok_s", "decode_b1_tok_s", "decode_b8_tok_s")


def run_pair(args, path: Path, new_tokens: int, repeats: int, rounds: int, dtype: str) -> tuple[dict, dict]:
    """Both runtimes in `dtype`, each in fresh processes; returns (transformers, local_moe) results."""
    results: dict[str, dict] = {}
    # Rounds alternate the two runtimes and keep each metric's best, so a burst of load from other
    # processes on a shared machine does not land on one side only.
    for kind in ("hf", "ours") * rounds:
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            kind,
            "--dir",
            str(path),
            "--prompt",
            str(args.prompt),
            "--new-tokens",
            str(new_tokens),
            "--repeats",
            str(repeats),
            "--dtype",
            dtype,
        ]
        if args.device:
            cmd += ["--device", args.device]
        if args.quick:
            cmd.append("--quick")
        if args.hf_experts:
            cmd += ["--hf-experts", args.hf_experts]
        if args.no_pack:
            cmd.append("--no-pack")
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        got = json.loads(out.stdout.strip().splitlines()[-1])
        best = results.setdefault(kind, got)
        for key in METRICS:
            best[key] = max(best[key], got[key])
        for key in ("peak_mem_gb", "load_s"):
            best[key] = min(best[key], got[key])
    return results["hf"], results["ours"]


def print_table(hf: dict, ours: dict, hf_dtype: dict[str, str], ours_dtype: str, memory: bool = False) -> None:
    print(f"{'metric':<22} {'transformers':>13} {'local_moe':>11} {'ratio':>7}")
    rows = [
        ("prefill_tok_s", "prefill tok/s"),
        ("decode_b1_tok_s", "decode tok/s  batch 1"),
        ("decode_b8_tok_s", "decode tok/s  batch 8"),
    ]
    if memory:
        rows += [("peak_mem_gb", "peak memory GB"), ("load_s", "load s")]
    for key, label in rows:
        note = f"  (transformers {hf_dtype[key]})" if hf_dtype.get(key, ours_dtype) != ours_dtype else ""
        print(f"{label:<22} {hf[key]:>13.2f} {ours[key]:>11.2f} {ours[key] / hf[key]:>6.2f}x{note}")

if __name__ == "__main__":
    sys.exit(main())
