"""lmtrain vs PyTorch on the same GPT, same shapes, same machine, in one run.

    /usr/bin/python3 tools/bench_vs_torch.py --lmtrain build/lmtrain
    /usr/bin/python3 tools/bench_vs_torch.py --lmtrain build/lmtrain --configs shakespeare-char

Configurations (training steps: forward, backward, AdamW; fp32; random tokens):
  shakespeare-char  nanoGPT's CPU setup: 4 layers, 4 heads, 128 channels, T=64, batch 12, V=65
  gpt2-124m         GPT-2 small at llm.c's CPU test size: B=4, T=64, V=50257
Each side runs with 1 and 2 threads (`--threads`) and its best median ms/step is compared.
With `--rounds R` every measurement is repeated R times, the sides taking turns, and each keeps
its fastest round: timings on a shared machine drift by 20-30% from minute to minute, and
alternating keeps one side from being measured only in a slow stretch.

`--torch-openblas-coretype SkylakeX` adds a PyTorch row run in a child process with
OPENBLAS_CORETYPE set: Debian's OpenBLAS 0.3.21 does not recognise some newer Xeons and falls
back to SSE3 kernels, and this row shows PyTorch with its BLAS fixed by hand. The speed-up is
printed against both PyTorch rows; the plain one is PyTorch as installed.
PyTorch is Debian's python3-torch (run with /usr/bin/python3); the model is tools/
gpt_reference.py's forward in float32 with torch.optim.AdamW, i.e. the model the reference
fixture checks lmtrain against. lmtrain runs `lmtrain bench` on the shipped recipes with the
data replaced by a synthetic corpus of the same vocabulary.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt_reference  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIGS = {
    "shakespeare-char": dict(recipe="recipes/shakespeare-char.yaml", n_layer=4, n_head=4, n_embd=128,
                             T=64, B=12, V=65, max_seq_len=64,
                             sets=["data.source=synthetic", "data.synthetic.vocab_size=65",
                                   "data.synthetic.train_tokens=200000", "data.synthetic.val_tokens=0"]),
    "gpt2-124m": dict(recipe="recipes/gpt2-124m.yaml", n_layer=12, n_head=12, n_embd=768, T=64, B=4,
                      V=50257, max_seq_len=1024,
                      sets=["data.source=synthetic", "data.synthetic.vocab_size=50257", "data.synthetic.order=1",
                            "data.synthetic.train_tokens=20000", "data.synthetic.val_tokens=0",
                            "run.seq_len=64", "run.micro_batch_size=4", "run.global_batch_size=4",
                            "precision.dtype=fp32", "run.device=cpu"]),
}


def torch_step_ms(cfg, threads, steps, warmup):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    V, C, L = cfg["V"], cfg["n_embd"], cfg["n_layer"]
    Vp = (V + 127) // 128 * 128
    args = types.SimpleNamespace(n_embd=C, n_head=cfg["n_head"], n_layer=L, vocab_size=V)
    shapes = gpt_reference.param_shapes(V, C, L, cfg["max_seq_len"])
    params = {}
    for name in gpt_reference.NAMES:
        w = torch.randn(shapes[name]) * 0.02
        if name == "wte":
            w = torch.cat([w, torch.zeros(Vp - V, C)])
        params[name] = w.requires_grad_(True)
    optimizer = torch.optim.AdamW(list(params.values()), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    B, T = cfg["B"], cfg["T"]
    times = []
    for step in range(warmup + steps):
        tokens = torch.randint(0, V, (B, T + 1))
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        _, loss = gpt_reference.forward(params, tokens[:, :-1], tokens[:, 1:], args)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        optimizer.step()
        if step >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def lmtrain_step_ms(binary, cfg, threads, steps, warmup):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        cmd = [binary, "bench", os.path.join(ROOT, cfg["recipe"]), "--steps", str(steps), "--warmup", str(warmup),
               "--device", "cpu", "--json", out, "--set", f"run.threads={threads}"]
        for s in cfg["sets"]:
            cmd += ["--set", s]
        subprocess.run(cmd, check=True, cwd=tmp, stdout=subprocess.DEVNULL)
        with open(out) as f:
            return json.load(f)["step"]["median_ms"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lmtrain", default=os.path.join(ROOT, "build", "lmtrain"))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat every measurement this many times, the sides taking turns, and keep "
                             "each side's fastest round (a shared machine has slow stretches)")
    parser.add_argument("--torch-openblas-coretype", metavar="NAME",
                        help="also time PyTorch with OPENBLAS_CORETYPE=NAME (e.g. SkylakeX, Haswell)")
    parser.add_argument("--torch-only", action="store_true", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.torch_only:  # child mode for --torch-openblas-coretype: one JSON line of ms per thread count
        print(json.dumps({name: [torch_step_ms(CONFIGS[name], t, a.steps, a.warmup) for t in a.threads]
                          for name in a.configs}))
        return
    print(f"torch {torch.__version__}, lmtrain {a.lmtrain}, threads tried {a.threads}, "
          f"{a.steps} steps after {a.warmup} warmup, best of {a.rounds} round(s)")
    print(f"{'config':<18} {'side':<8} " + " ".join(f"{f'{t} thr ms':>10}" for t in a.threads) + f" {'best ms':>9}")
    for name in a.configs:
        cfg = CONFIGS[name]
        best = {}
        rows = [("torch", None), ("lmtrain", None)]
        if a.torch_openblas_coretype:
            rows.insert(1, (f"torch {a.torch_openblas_coretype}", a.torch_openblas_coretype))
        def measure(side, coretype):
            if side == "lmtrain":
                return [lmtrain_step_ms(a.lmtrain, cfg, t, a.steps, a.warmup) for t in a.threads]
            if coretype is None:
                return [torch_step_ms(cfg, t, a.steps, a.warmup) for t in a.threads]
            child = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--torch-only", "--configs", name, "--steps",
                 str(a.steps), "--warmup", str(a.warmup), "--threads", *map(str, a.threads)],
                check=True, capture_output=True, text=True, env={**os.environ, "OPENBLAS_CORETYPE": coretype})
            return json.loads(child.stdout.strip().splitlines()[-1])[name]

        # Rounds alternate the sides; each (side, threads) keeps its fastest round's median.
        results = {side: [math.inf] * len(a.threads) for side, _ in rows}
        for _ in range(a.rounds):
            for side, coretype in rows:
                results[side] = [min(old, new) for old, new in zip(results[side], measure(side, coretype))]
        for side, _ in rows:
            best[side] = min(results[side])
            print(f"{name:<18} {side:<8} " + " ".join(f"{r:>10.1f}" for r in results[side]) + f" {best[side]:>9.1f}")
        for side, _ in rows:
            if side != "lmtrain":
                print(f"{name:<18} speed-up lmtrain vs {side}: {best[side] / best['lmtrain']:.2f}x")


if __name__ == "__main__":
    main()
