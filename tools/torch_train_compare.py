"""Train nanoGPT's CPU shakespeare-char setup in PyTorch on lmtrain's shards; evaluate like lmtrain.

Answers "does lmtrain's val_loss match PyTorch's for the same setup?" (recipes/shakespeare-char.yaml).

    /usr/bin/python3 tools/torch_train_compare.py --data-dir /tmp/shk/data/shakespeare_char
    /usr/bin/python3 tools/torch_train_compare.py --no-bias --gelu exact   # nanoGPT's own model

The model is tools/gpt_reference.py's `forward` (llm.c's stacked parameter layout), run in
float32 here. Setup (nanoGPT config/train_shakespeare_char.py plus its README CPU command):
  n_layer 4, n_head 4, n_embd 128, seq_len 64, batch 12, 2000 steps; AdamW lr 1e-3,
  betas (0.9, 0.99), eps 1e-8, weight_decay 0.1 on wte/wpe/qkvw/attprojw/fcw/fcprojw only;
  clip_grad_norm_ 1.0; lr = lr*(step+1)/100 for step < 100, then cosine from lr to 1e-4 with
  progress (step - 100 + 1)/(steps - 100), so the last step runs at min_lr (lmtrain's
  LrSchedule). GPT-2 init from torch.manual_seed(seed): N(0, 0.02) for wte[:V], wpe, qkvw, fcw;
  N(0, 0.02/sqrt(2L)) for attprojw, fcprojw; biases 0; layernorm weight 1, bias 0. wte has
  Vp = 128 rows; rows >= V start at zero and stay zero (never read, zero grad).
Training batches: 12 windows of T + 1 tokens, starts torch.randint uniform in [0, n - T - 1]
(nanoGPT's get_batch). Evaluation (lmtrain's TokenWindows::eval_batch): W = 200 * 12 fixed
windows, window k starts at k * (n - T - 1) // (W - 1); batch i is windows 12i .. 12i+11;
val_loss = mean over batches of the batch-mean loss.

--no-bias keeps the bias tensors as constant zeros outside the optimizer, which is exactly a
model without linear/layernorm biases (nanoGPT's bias=False). --gelu exact swaps the GELU that
gpt_reference.forward calls (it hard-codes approximate="tanh") for the erf form nanoGPT uses.
"""
import argparse
import math
import os
import struct
import sys
import time
import types

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt_reference  # noqa: E402

NAMES = gpt_reference.NAMES
DECAY = gpt_reference.DECAY
BIASES = {"ln1b", "qkvb", "attprojb", "ln2b", "fcb", "fcprojb", "lnfb"}
LN_WEIGHTS = {"ln1w", "ln2w", "lnfw"}
HEADER_BYTES = 64


def load_shard(path):
    """Reads an lmtrain token shard; returns (int64 tokens tensor, vocab_size)."""
    with open(path, "rb") as f:
        header = f.read(HEADER_BYTES)
        magic, version, token_bytes, num_tokens, vocab_size = struct.unpack("<8sIIQQ", header[:32])
        if magic != b"LMTSHARD":
            raise SystemExit(f"{path}: bad magic {magic!r}")
        if token_bytes != 2:
            raise SystemExit(f"{path}: token_bytes {token_bytes}, expected 2")
        tokens = np.fromfile(f, dtype="<u2")
    if tokens.size != num_tokens:
        raise SystemExit(f"{path}: header says {num_tokens} tokens, file has {tokens.size}")
    return torch.from_numpy(tokens.astype(np.int64)), vocab_size, version


class _ExactGeluF(types.SimpleNamespace):
    """torch.nn.functional, except gelu ignores approximate= and uses the exact (erf) form."""

    def __getattr__(self, name):
        return getattr(F, name)

    @staticmethod
    def gelu(x, approximate="none"):
        return F.gelu(x)


def init_params(cfg, bias):
    """GPT-2 init in gpt_reference's layout, float32, from the global torch RNG."""
    V, Vp, C, L, maxT = cfg.vocab_size, cfg.padded_vocab_size, cfg.n_embd, cfg.n_layer, cfg.max_seq_len
    shapes = gpt_reference.param_shapes(V, C, L, maxT)
    params = {}
    for name in NAMES:
        if name in LN_WEIGHTS:
            w = torch.ones(shapes[name])
        elif name in BIASES:
            w = torch.zeros(shapes[name])
        else:
            std = 0.02 / math.sqrt(2 * L) if name in ("attprojw", "fcprojw") else 0.02
            w = torch.empty(shapes[name]).normal_(0.0, std)
        if name == "wte":
            w = torch.cat([w, torch.zeros(Vp - V, C)])
        params[name] = w.requires_grad_(bias or name not in BIASES)
    return params


def lr_at(step, a):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    # As train/lr_schedule.cpp: the first decay step uses lr, the last step min_lr.
    progress = min(1.0, max(0.0, (step - a.warmup) / max(1, a.steps - a.warmup - 1)))
    return a.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (a.lr - a.min_lr)


def evaluate(p, val_inputs, val_targets, cfg):
    losses = []
    with torch.no_grad():
        for x, y in zip(val_inputs, val_targets):
            _, loss = gpt_reference.forward(p, x, y, cfg)
            losses.append(loss.item())
    return sum(losses) / len(losses)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default="/tmp/shk/data/shakespeare_char")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--eval-every", dest="eval_every", type=int, default=250)
    ap.add_argument("--eval-batches", dest="eval_batches", type=int, default=200)
    ap.add_argument("--log-every", dest="log_every", type=int, default=50)
    ap.add_argument("--bias", dest="bias", action="store_true", default=True,
                    help="linear and layernorm biases (default, like lmtrain)")
    ap.add_argument("--no-bias", dest="bias", action="store_false",
                    help="no biases (nanoGPT's default bias=False)")
    ap.add_argument("--gelu", choices=["tanh", "exact"], default="tanh",
                    help="tanh (lmtrain, default) or exact erf (nanoGPT)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-layer", dest="n_layer", type=int, default=4)
    ap.add_argument("--n-head", dest="n_head", type=int, default=4)
    ap.add_argument("--n-embd", dest="n_embd", type=int, default=128)
    ap.add_argument("--seq-len", dest="seq_len", type=int, default=64)
    ap.add_argument("--batch-size", dest="batch_size", type=int, default=12)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr", dest="min_lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.99)
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--weight-decay", dest="weight_decay", type=float, default=0.1)
    ap.add_argument("--grad-clip", dest="grad_clip", type=float, default=1.0)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    if a.gelu == "exact":
        gpt_reference.F = _ExactGeluF()

    # `lmtrain data prepare` writes numbered shards; tinyshakespeare fits in one of each.
    train, V, ver = load_shard(os.path.join(a.data_dir, "train_000000.bin"))
    val, V_val, _ = load_shard(os.path.join(a.data_dir, "val_000000.bin"))
    assert V == V_val, (V, V_val)
    B, T = a.batch_size, a.seq_len
    cfg = types.SimpleNamespace(vocab_size=V, padded_vocab_size=(V + 127) // 128 * 128,
                                n_embd=a.n_embd, n_head=a.n_head, n_layer=a.n_layer, max_seq_len=T)
    print(f"torch {torch.__version__} threads {torch.get_num_threads()}; shard v{ver}: "
          f"train {train.numel()} val {val.numel()} tokens, vocab {V} (padded {cfg.padded_vocab_size})")
    print(f"config: L{a.n_layer} H{a.n_head} C{a.n_embd} T{T} B{B} steps {a.steps} seed {a.seed} "
          f"bias {a.bias} gelu {a.gelu} lr {a.lr}->{a.min_lr} warmup {a.warmup} "
          f"betas ({a.beta1}, {a.beta2}) eps {a.eps} wd {a.weight_decay} clip {a.grad_clip} float32")

    # Fixed evaluation windows, exactly as lmtrain's TokenWindows::eval_batch.
    W = a.eval_batches * B
    last_start = val.numel() - T - 1
    starts = torch.tensor([k * last_start // max(1, W - 1) for k in range(W)], dtype=torch.int64)
    windows = val[starts[:, None] + torch.arange(T + 1)]  # (W, T+1)
    val_inputs = windows[:, :T].reshape(a.eval_batches, B, T)
    val_targets = windows[:, 1:].reshape(a.eval_batches, B, T)

    torch.manual_seed(a.seed)
    p = init_params(cfg, a.bias)
    trainable = [n for n in NAMES if p[n].requires_grad]
    n_params = sum(p[n].numel() for n in trainable)
    print(f"trainable params {n_params} (wte counted with {cfg.padded_vocab_size} rows): "
          + ",".join(trainable))
    opt = torch.optim.AdamW(
        [{"params": [p[n] for n in trainable if n in DECAY], "weight_decay": a.weight_decay},
         {"params": [p[n] for n in trainable if n not in DECAY], "weight_decay": 0.0}],
        lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps)
    plist = [p[n] for n in trainable]

    offs = torch.arange(T + 1)
    window_losses, window_ms = [], []
    train_ms_total = 0.0
    results = []
    t_start = time.perf_counter()
    for step in range(a.steps):
        t0 = time.perf_counter()
        lr = lr_at(step, a)
        for group in opt.param_groups:
            group["lr"] = lr
        ix = torch.randint(train.numel() - T, (B,))  # starts in [0, n - T - 1]
        batch = train[ix[:, None] + offs]
        opt.zero_grad(set_to_none=True)
        _, loss = gpt_reference.forward(p, batch[:, :T], batch[:, 1:], cfg)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(plist, a.grad_clip)
        opt.step()
        lossf = loss.item()
        ms = (time.perf_counter() - t0) * 1000.0
        train_ms_total += ms
        window_losses.append(lossf)
        window_ms.append(ms)
        done = step + 1
        if done % a.log_every == 0 or done == 1:
            print(f"step {done} train_loss {lossf:.4f} (mean of last {len(window_losses)}: "
                  f"{sum(window_losses) / len(window_losses):.4f}) grad_norm {norm.item():.3f} "
                  f"lr {lr:.3e} ms/step {sum(window_ms) / len(window_ms):.1f}", flush=True)
            window_losses, window_ms = [], []
        if a.eval_every > 0 and (done % a.eval_every == 0 or done == a.steps):
            te = time.perf_counter()
            vl = evaluate(p, val_inputs, val_targets, cfg)
            results.append((done, vl))
            print(f"step {done} val_loss {vl:.4f} (eval {time.perf_counter() - te:.1f} s)", flush=True)
    assert p["wte"].detach()[V:].abs().max() == 0
    total = time.perf_counter() - t_start
    print(f"done: {a.steps} steps, {train_ms_total / a.steps:.1f} ms/step (train only), "
          f"{total:.1f} s total")
    print("val_loss: " + "  ".join(f"{s}:{v:.4f}" for s, v in results))


if __name__ == "__main__":
    main()
