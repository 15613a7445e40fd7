"""titans-ts in one minute: a memory that learns while it reads, and a stream that can stop and resume.

Run with `make demo`; examples/forecast_stream.py follows with a real series.
"""
import runpy
from pathlib import Path

import torch

from titans_ts import NeuralMemory, TitansConfig, TitansEncoder

torch.manual_seed(0)

# 1. Test-time learning: a NeuralMemory memorises associations while it reads them (no optimizer).
mem = NeuralMemory(d_model=32, heads=1, memory_depth=2, chunk_size=8, conv_kernel=1)
facts = torch.randn(1, 64, 32)
state = mem.initial_state(batch_size=1)
with torch.no_grad():
    before = mem.surprise(facts, state, memorize=False)[0].momentary.mean().item()
    for _ in range(10):
        _, state = mem(facts, state)  # read and memorise
    after = mem.surprise(facts, state, memorize=False)[0].momentary.mean().item()
print(f"1. recall error of 64 associations: {before:.3f} before reading them, {after:.3f} after 10 passes")

# 2. Streaming: feed a sequence in pieces, carrying the state, and get what one call gives.
for variant in ("mal", "mag", "mac", "lmm"):
    enc = TitansEncoder(TitansConfig(d_model=32, n_layers=2, variant=variant, window=16, chunk_size=8)).eval()
    x = torch.randn(2, 100, 32)
    with torch.no_grad():
        whole, _ = enc(x)
        first, s = enc(x[:, :37])
        second, s = enc(x[:, 37:], state=s)
    gap = (torch.cat([first, second], dim=1) - whole).abs().max().item()
    print(f"2. {variant}: streamed in two pieces vs one call, max difference {gap:.1e}")

# 3. Forecasting a real series and streaming new observations into it.
print("3. forecasting ETTh1 (bundled) and streaming new rows into the memory:")
runpy.run_path(str(Path(__file__).with_name("forecast_stream.py")), run_name="__main__")
