"""Open a checkpoint directory as a ready-to-serve engine (model + tokenizer + cache)."""

from __future__ import annotations

from pathlib import Path

from local_moe.engine import Engine
from local_moe.loader import load_model
from local_moe.tokenizer import Tokenizer


def open_engine(
    model_dir: str | Path,
    *,
    device: str | None = None,
    dtype: str | None = None,
    max_batch: int = 8,
    max_seq: int = 2048,
    record_experts: bool = True,
    quantize: str | None = None,
) -> Engine:
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise FileNotFoundError(f"{model_dir} is not a checkpoint directory (no config.json)")
    model = load_model(model_dir, device=device, dtype=dtype, quantize=quantize)
    tokenizer = Tokenizer(model_dir)
    max_seq = min(max_seq, model.args.max_position_embeddings)
    return Engine(model, tokenizer, max_batch=max_batch, max_seq=max_seq, record_experts=record_experts)
