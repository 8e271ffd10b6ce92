from __future__ import annotations

import pytest

from local_moe.bpe import save_tokenizer, train_bpe
from tests.local_moe.tiny import build

TEXT = [
    "the quick brown fox jumps over the lazy dog",
    "hello world, a small model says hello",
    "experts route tokens; routers pick experts",
]


def make_checkpoint(path, family: str = "deepseek_v3", seed: int = 0):
    tok = train_bpe(TEXT * 20, 300)
    save_tokenizer(tok, path)
    build(
        family,
        path,
        seed=seed,
        vocab_size=tok.get_vocab_size(),
        eos_token_id=tok.token_to_id("<|im_end|>"),
        pad_token_id=tok.token_to_id("<|endoftext|>"),
        bos_token_id=None,
    )
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A random tiny DeepSeek-V3 checkpoint with a real byte-level BPE tokenizer and chat template."""
    return make_checkpoint(tmp_path_factory.mktemp("tiny_v3"))
