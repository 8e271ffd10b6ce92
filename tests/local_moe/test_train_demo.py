"""train-demo writes a checkpoint that both local_moe and transformers load, with identical logits."""

from __future__ import annotations

import json

import torch

from local_moe.cli import main as cli_main
from local_moe.loader import load_model
from local_moe.tokenizer import Tokenizer
from local_moe.train_demo import load_corpus


def test_corpus_is_shipped_and_chat_shaped():
    docs = load_corpus()
    assert len(docs) > 50
    assert sum("<|im_start|>assistant" in d for d in docs) > 50


def test_train_demo_checkpoint_loads_in_both_runtimes(tmp_path):
    out = tmp_path / "demo"
    assert cli_main(["train-demo", "--out", str(out), "--steps", "3"]) == 0
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (out / name).exists()
    report = json.loads((out / "demo_report.json").read_text())
    assert report["balance"] and report["load_cv"] >= 0
    ours = load_model(out, device="cpu", dtype="float32")
    biases = [b.mlp.gate.bias for b in ours.layers if b.is_moe]
    assert any(b.abs().sum() > 0 for b in biases)  # bias balancing moved the selection biases
    tok = Tokenizer(out)
    ids = tok.encode_chat([{"role": "user", "content": "Why is the sky blue?"}])
    assert tok.decode(ids, skip_special_tokens=False).startswith("<|im_start|>user\nWhy is the sky blue?")

    from transformers import AutoModelForCausalLM

    ref = AutoModelForCausalLM.from_pretrained(out).eval()
    x = torch.tensor([ids])
    with torch.no_grad():
        assert (ref(x).logits - ours(x)).abs().max().item() < 1e-4
