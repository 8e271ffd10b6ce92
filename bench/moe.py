"""local_moe vs transformers on one realistic-shape MoE checkpoint.

    .venv/bin/python bench/moe.py            # 8 layers, hidden 1024, 32 experts, top-4, expert width 512
    .venv/bin/python bench/moe.py --quick    # a smaller shape and fewer tokens, for a smoke run
    .venv/bin/python bench/moe.py --dispatch # grouped_mm vs per-expert slices at decode and prefill sizes
    .venv/bin/python bench/moe.py --dtype bfloat16 --no-int8   # one dtype, exact mode only

Prints prefill tokens/s (512-token prompt), decode tokens/s at batch 1 and 8, and peak memory for
each runtime, with the ratio ours/transformers. Each runtime runs in its own process so peak memory
(ru_maxrss on CPU, max_memory_allocated on CUDA) is its own, with torch's default thread count (the
table prints both processes' counts). Both run greedy decoding on the same device; transformers uses
its own `generate`. On CPU the default runs both fp32 and bf16 and prints one same-dtype table per
dtype, then the headline: ours in bf16 against transformers in its fastest dtype for each metric
(`--dtype` runs one dtype only). It prints the kernel local_moe chose for each weight shape
(local_moe/kernels.py) and the memory-bandwidth ceiling, on CPU as on CUDA: the machine's streaming
read bandwidth on the threads the runtimes use (a sum over a buffer larger than the caches; the copy
bandwidth beside it), the active weight bytes one decoded token reads, and batch-1 decode tok/s as
a fraction of bandwidth / bytes. On CPU it then runs local_moe with int8 weights (`--quantize
int8`) against exact bf16 and reports the difference: top-1 agreement with exact mode over 2,000
greedily decoded tokens (teacher-forced), and perplexity on a fixed text, for this random checkpoint
(beside bf16-vs-fp32 agreement, the noise floor of a model whose logits are nearly flat) and for the
trained demo model (`--demo DIR`, default data/demo-moe when `make run` has built it).
`--no-pack` keeps local_moe's CPU weights unpacked (plain F.linear), to show what kernel choice buys.
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
    quantize: str | None = None,
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

        model = load_model(path, device=dev, dtype=dt, pack=pack, quantize=quantize)
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
        "kernels": [c.describe() for c in model.kernel_choices] if kind == "ours" else [],
    }
    result["prefill_tok_s"] = prompt_len / _best(prefill, repeats)
    for batch in (1, 8):
        gen(batch, 2)  # warm-up
        first = _best(lambda b=batch: gen(b, 1), repeats)  # prefill + first token
        total = _best(lambda b=batch: gen(b, new_tokens), repeats)
        result[f"decode_b{batch}_tok_s"] = batch * (new_tokens - 1) / max(total - first, 1e-9)
    result["peak_mem_gb"] = _peak_bytes(dev) / 1e9
    return result


def active_bytes_per_token(path: Path, bytes_per_param: int, int8: bool = False) -> int:
    """Weights one decode token must read: everything but the unchosen experts (and one embedding row).
    With int8, linear and expert weights take one byte (plus a scale per output row); routers stay."""
    from local_moe.config import load_config

    a = load_config(path)
    big = 1 if int8 else bytes_per_param

    def linear(rows: int, cols: int) -> int:
        return rows * cols * big + (rows * 4 if int8 else 0)

    total = linear(a.vocab_size, a.hidden_size)  # lm_head
    for moe_layer in a.moe_layers:
        total += linear(a.num_heads * a.head_dim + 2 * a.num_kv_heads * a.head_dim, a.hidden_size)
        total += linear(a.hidden_size, a.num_heads * a.head_dim) + 2 * a.hidden_size * bytes_per_param
        if moe_layer:
            total += a.num_experts * a.hidden_size * bytes_per_param  # router
            expert = linear(2 * a.moe_intermediate_size, a.hidden_size)
            total += a.top_k * (expert + linear(a.hidden_size, a.moe_intermediate_size))
        else:
            total += linear(2 * a.intermediate_size, a.hidden_size) + linear(a.hidden_size, a.intermediate_size)
    return total


def memory_bandwidth_gbs(device: torch.device) -> tuple[float, float]:
    """(streaming read GB/s, copy GB/s counting both read and write bytes) over a 2 GiB buffer, larger
    than the caches (this machine's L3 reads 480 MiB), with the threads torch uses here."""
    x = torch.ones(1 << 29, dtype=torch.float32, device=device)
    y = torch.empty_like(x)
    nbytes = x.numel() * 4
    read = _best(lambda: (x.sum(), _sync(device)), 5)
    copy = _best(lambda: (y.copy_(x), _sync(device)), 5)
    return nbytes / read / 1e9, 2 * nbytes / copy / 1e9


def forced_decode(model, prompt: list[int], tokens: list[int]) -> list[int]:
    """Top-1 at every step of batch-1 decode fed `tokens` one at a time through the KV cache: teacher
    forcing on the one-row kernels that serving runs (a whole sequence at once takes the many-row
    ones instead)."""
    from local_moe.cache import KVCache, Step

    cache = KVCache(model.args, 1, len(prompt) + len(tokens), model.device, model.dtype)
    step = Step.build(cache, [0], [0], len(prompt))
    logits = model(torch.tensor([prompt]), torch.arange(len(prompt))[None], step, last_only=True)
    preds = [int(logits[0].argmax())]
    for i, t in enumerate(tokens[:-1]):
        pos = len(prompt) + i
        step = Step.build(cache, [0], [pos], 1)
        logits = model(torch.tensor([[t]]), torch.tensor([[pos]]), step, last_only=True)
        preds.append(int(logits[0].argmax()))
    return preds


def agreement(path: Path, prompts: list[list[int]], new_tokens: int, text: list[int]) -> dict:
    """Exact bf16 greedily decodes `new_tokens` after each prompt; every other mode is teacher-forced
    on those sequences and scored on how often its top-1 matches the decoded token, and on its
    perplexity over the fixed `text`. Modes: exact bf16 itself (cache vs no cache), exact fp32 (the
    floor set by bf16 rounding), and int8 with each int8 kernel that works here. Teacher forcing
    runs each whole sequence at once (many-row kernels), and, for the int8 modes, once more token by
    token through the cache (`decode_agreement`: the one-row kernels batch-1 serving runs)."""
    import os

    from local_moe.generate import greedy_generate
    from local_moe.kernels import INT8, available
    from local_moe.loader import load_model

    exact = load_model(path, device="cpu", dtype="bfloat16")
    decoded = greedy_generate(exact, prompts, new_tokens)
    modes = {"bf16 exact": exact, "fp32 exact": load_model(path, device="cpu", dtype="float32")}
    for kind in INT8:
        if available(kind, torch.device("cpu"), torch.bfloat16):
            os.environ["BULKHEAD_MOE_KERNELS"] = kind
            try:
                modes[f"int8 {kind}"] = load_model(path, device="cpu", dtype="bfloat16", quantize="int8")
            finally:
                del os.environ["BULKHEAD_MOE_KERNELS"]
    out = {"tokens": sum(len(d) for d in decoded)}
    with torch.inference_mode():
        for name, model in modes.items():
            same = total = 0
            for prompt, got in zip(prompts, decoded, strict=True):
                seq = torch.tensor([prompt + got])
                preds = model(seq)[0, len(prompt) - 1 : -1].float().argmax(-1).tolist()
                same += sum(a == b for a, b in zip(preds, got, strict=False))
                total += len(got)
            logits = model(torch.tensor([text]))[0, :-1].float()
            ppl = torch.nn.functional.cross_entropy(logits, torch.tensor(text[1:])).exp().item()
            out[name] = {"top1_agreement": same / max(total, 1), "perplexity": ppl}
            if name.startswith("int8"):
                hits = sum(
                    a == b
                    for prompt, got in zip(prompts, decoded, strict=True)
                    for a, b in zip(forced_decode(model, prompt, got), got, strict=True)
                )
                out[name]["decode_agreement"] = hits / max(total, 1)
    return out


def agreement_inputs(path: Path, demo: bool) -> tuple[list[list[int]], int, list[int]]:
    """Prompts, tokens per prompt (2,000 in all) and a fixed text: the demo corpus for the trained
    demo model, seeded random ids for the random checkpoint (whose vocabulary has no text)."""
    vocab = json.loads((path / "config.json").read_text())["vocab_size"]
    gen = torch.Generator().manual_seed(0)
    if not demo:
        prompts = torch.randint(0, vocab, (16, 16), generator=gen).tolist()
        return prompts, 125, torch.randint(0, vocab, (1, 1024), generator=gen)[0].tolist()
    from local_moe.tokenizer import Tokenizer
    from local_moe.train_demo import load_corpus

    tok = Tokenizer(path)
    docs = load_corpus()
    ids = [t for d in docs for t in tok.encode(d)]
    prompts = [tok.encode(d)[:16] for d in docs[:: max(1, len(docs) // 20)][:20]]
    prompts = [p for p in prompts if len(p) == 16][:16]
    text = ids[len(ids) // 2 : len(ids) // 2 + 512]
    return prompts, 2000 // len(prompts) + 1, text


def dispatch_bench(path: Path, device: str | None, dtype: str) -> None:
    """Time one MoE layer's expert computation with each dispatch mode at several row counts: unpacked
    grouped_mm and per-expert slices, and (where packing works, i.e. CPU) packed per-expert slices.
    Every layer's experts run in turn, so weights come from memory as in a real step, not from cache."""
    from local_moe import moe
    from local_moe.kernels import can_pack
    from local_moe.loader import load_model, pick_device

    dev, dt = pick_device(device, dtype)
    plain = load_model(path, device=dev, dtype=dt, pack=False)
    packed = load_model(path, device=dev, dtype=dt, pack=True) if can_pack(dev, dt) else None
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
    p.add_argument("--no-int8", action="store_true", help="skip the int8 run and its agreement check")
    p.add_argument("--demo", type=Path, default=ROOT / "data" / "demo-moe", help="trained demo checkpoint")
    p.add_argument("--worker", choices=["hf", "ours", "ours-int8", "agree"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    shape = QUICK if args.quick else FULL
    path = args.dir or Path("/tmp") / f"bulkhead-bench-moe-{'quick' if args.quick else 'full'}"
    new_tokens = args.new_tokens or (12 if args.quick else 32)
    repeats = args.repeats or (1 if args.quick else 2)
    rounds = args.rounds or (1 if args.quick else 2)
    cuda = torch.cuda.is_available() and args.device != "cpu"
    dtypes = [args.dtype] if args.dtype else (["bfloat16"] if cuda else ["float32", "bfloat16"])
    pack = False if args.no_pack else None
    if args.worker == "agree":
        print(json.dumps(agreement(path, *agreement_inputs(path, demo=path == args.demo))))
        return 0
    if args.worker:
        kind, quantize = ("ours", "int8") if args.worker == "ours-int8" else (args.worker, None)
        result = worker(
            kind, path, args.prompt, new_tokens, repeats, args.device, dtypes[0], args.hf_experts, pack, quantize
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
        f"{repeats}x{rounds}; local_moe kernels {'unpacked (--no-pack)' if args.no_pack else 'chosen at load'}"
    )
    int8 = not (cuda or args.no_int8 or args.no_pack)
    results = {dt: run_pair(args, path, new_tokens, repeats, rounds, dt, int8) for dt in dtypes}
    device = torch.device("cuda" if cuda else "cpu")
    read_bw, copy_bw = memory_bandwidth_gbs(device)
    print(
        f"\nmemory bandwidth ({device.type}, {torch.get_num_threads()} threads, 2 GiB buffer): "
        f"streaming read {read_bw:.1f} GB/s, copy {copy_bw:.1f} GB/s (read + write bytes)"
    )
    for dt, (hf, ours, _) in results.items():
        print(
            f"\n{dt}: device {ours['device']}, threads transformers {hf['threads']} / local_moe "
            f"{ours['threads']}; transformers experts_implementation={hf.get('experts_impl')}"
        )
        print_table(hf, ours, {k: dt for k in METRICS}, dt, memory=True)
        print_ceiling(path, ours, hf, read_bw, "transformers")
        print("local_moe kernels: " + ("\n  ".join([""] + ours["kernels"]) or "none"))
    if len(results) > 1 and "bfloat16" in results:
        # The headline: each runtime at its best. For transformers on CPU that is fp32 (its bf16 is slower).
        ours = results["bfloat16"][1]
        best_hf, hf_dtype = {}, {}
        for key in METRICS:
            dt = max(results, key=lambda d: results[d][0][key])
            best_hf[key], hf_dtype[key] = results[dt][0][key], dt
        print("\nheadline: local_moe bfloat16 vs transformers in its fastest dtype per metric")
        print_table(best_hf, ours, hf_dtype, "bfloat16")
    if int8 and "bfloat16" in results:
        exact, quant = results["bfloat16"][1], results["bfloat16"][2]
        print("\nint8 weights (--quantize int8) vs exact bfloat16, both local_moe")
        print_table(exact, quant, {}, "bfloat16", memory=True, names=("bf16 exact", "int8"))
        print_ceiling(path, quant, exact, read_bw, "bf16 exact", int8=True)
        print("int8 kernels: " + "\n  ".join([""] + quant["kernels"]))
        checkpoints = [("this random checkpoint", path)]
        if (args.demo / "config.json").exists():
            checkpoints.append((f"the trained demo model ({args.demo})", args.demo))
        else:
            print(f"(no demo model at {args.demo}: `make run` or `bulkhead moe train-demo --out DIR` builds one)")
        for label, ckpt in checkpoints:
            cmd = [sys.executable, __file__, "--worker", "agree", "--dir", str(ckpt), "--demo", str(args.demo)]
            got = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
            print(f"\nagreement with exact bf16 on {label}: {got.pop('tokens')} decoded tokens, teacher-forced")
            print(f"{'mode':<20} {'top-1 agreement':>16} {'perplexity':>11} {'one-row decode':>15}")
            for mode, row in got.items():
                one_row = f"{row['decode_agreement']:>15.2%}" if "decode_agreement" in row else f"{'':>15}"
                print(f"{mode:<20} {row['top1_agreement']:>16.2%} {row['perplexity']:>11.2f} {one_row}")
    return 0


def print_ceiling(path: Path, ours: dict, other: dict, read_bw: float, other_name: str, int8: bool = False) -> None:
    per_token = active_bytes_per_token(path, 2 if ours["dtype"] in ("bfloat16", "float16") else 4, int8)
    ceiling = read_bw * 1e9 / per_token
    print(
        f"bandwidth ceiling: {per_token / 1e6:.1f} MB active weights/token at {read_bw:.1f} GB/s -> "
        f"{ceiling:.0f} tok/s; batch-1 decode reaches {ours['decode_b1_tok_s'] / ceiling:.1%} "
        f"({other_name} {other['decode_b1_tok_s'] / ceiling:.1%})"
    )


METRICS = ("prefill_tok_s", "decode_b1_tok_s", "decode_b8_tok_s")


def run_pair(
    args, path: Path, new_tokens: int, repeats: int, rounds: int, dtype: str, int8: bool
) -> tuple[dict, dict, dict | None]:
    """Both runtimes in `dtype`, each in fresh processes, and local_moe with int8 weights too when
    `int8` and dtype is bf16; returns (transformers, local_moe, local_moe int8 or None)."""
    results: dict[str, dict] = {}
    kinds = ("hf", "ours", "ours-int8") if int8 and dtype == "bfloat16" else ("hf", "ours")
    # Rounds alternate the two runtimes and keep each metric's best, so a burst of load from other
    # processes on a shared machine does not land on one side only.
    for kind in kinds * rounds:
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
    return results["hf"], results["ours"], results.get("ours-int8")


def print_table(
    hf: dict,
    ours: dict,
    hf_dtype: dict[str, str],
    ours_dtype: str,
    memory: bool = False,
    names: tuple[str, str] = ("transformers", "local_moe"),
) -> None:
    print(f"{'metric':<22} {names[0]:>13} {names[1]:>11} {'ratio':>7}")
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
