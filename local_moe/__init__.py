"""local_moe: a compact PyTorch runtime for Mixture-of-Experts checkpoints in Hugging Face format.

config.py (what a checkpoint is) -> loader.py (safetensors in) -> model.py + moe.py (the network) ->
cache.py (KV slots) -> engine.py (continuous batching) -> openai_api.py / server.py (the wire).
"""

from local_moe.config import ModelArgs, load_config
from local_moe.engine import Engine, Event, Result
from local_moe.loader import load_model, pick_device
from local_moe.runtime import open_engine
from local_moe.sampling import SamplingParams
from local_moe.tokenizer import Tokenizer

__all__ = [
    "Engine",
    "Event",
    "ModelArgs",
    "Result",
    "SamplingParams",
    "Tokenizer",
    "load_config",
    "load_model",
    "open_engine",
    "pick_device",
]
