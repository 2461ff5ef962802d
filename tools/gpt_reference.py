"""PyTorch reference for lmtrain's GPT-2 (float64), dumped to a safetensors fixture.

Regenerate (the fixture is compared by the C++ tests in tests/model/):

    /usr/bin/python3 tools/gpt_reference.py --out tests/fixtures/gpt_reference.safetensors

Inspect any safetensors file:  /usr/bin/python3 tools/gpt_reference.py --check FILE

Parameter layout (llm.c style, per-layer tensors stacked along a leading L axis):
  wte (Vp,C) [rows >= V are zero and stay zero], wpe (maxT,C), ln1w/ln1b (L,C),
  qkvw (L,3C,C), qkvb (L,3C), attprojw (L,C,C), attprojb (L,C), ln2w/ln2b (L,C),
  fcw (L,4C,C), fcb (L,4C), fcprojw (L,C,4C), fcprojb (L,C), lnfw/lnfb (C).

Initial weights come from one torch.Generator(seed), drawn in float32 in the order above:
  wte is drawn as (V,C) and zero-padded to Vp rows; matrices and wte/wpe ~ N(0, 0.02);
  attprojw, fcprojw ~ N(0, 0.02/sqrt(2L)); biases ~ N(0, 0.02); layernorm weights
  1 + N(0, 0.1); layernorm biases N(0, 0.02). Then tokens (steps,B,T+1) int in [0,V)
  from the same generator. Everything after that is computed in float64 from the
  float32 initial values, and stored as F32 (tokens as I32).

Fixture contents: param.<name>, tokens, logits (B,T,V) and loss [1] of batch 0 at init,
grad.<name> for batch 0, then `steps` steps of (loss, backward, pre-clip total grad norm,
clip_grad_norm_(1.0), AdamW with weight decay only on wte/wpe/qkvw/attprojw/fcw/fcprojw):
step_losses [steps], step_grad_norms [steps], final.<name> (all but the stacked matrices
qkvw, attprojw, fcw and fcprojw, left out for size; see FINAL_OMIT and "final_omitted").
The data is uniform random, so the step losses hover around ln V rather than fall.
"""
import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

NAMES = ["wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
         "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"]
DECAY = {"wte", "wpe", "qkvw", "attprojw", "fcw", "fcprojw"}
# Left out of final.<name> to keep the fixture under 2 MiB: the stacked 3-D matrices take the
# same AdamW path (decayed) as wte and wpe, which are kept. Recorded in the metadata.
FINAL_OMIT = {"qkvw", "attprojw", "fcw", "fcprojw"}


def param_shapes(V, C, L, maxT):
    """Shapes of the 16 parameter tensors (wte without its padding rows)."""
    return {"wte": (V, C), "wpe": (maxT, C), "ln1w": (L, C), "ln1b": (L, C),
            "qkvw": (L, 3 * C, C), "qkvb": (L, 3 * C), "attprojw": (L, C, C),
            "attprojb": (L, C), "ln2w": (L, C), "ln2b": (L, C), "fcw": (L, 4 * C, C),
            "fcb": (L, 4 * C), "fcprojw": (L, C, 4 * C), "fcprojb": (L, C),
            "lnfw": (C,), "lnfb": (C,)}


def init_params(a, g):
    """Returns {name: float64 tensor} built from float32 draws of generator g."""
    V, Vp, C, L, maxT = a.vocab_size, a.padded_vocab_size, a.n_embd, a.n_layer, a.max_seq_len
    shapes = param_shapes(V, C, L, maxT)
    params = {}
    for name in NAMES:
        w = torch.randn(shapes[name], generator=g, dtype=torch.float32)
        if name in ("ln1w", "ln2w", "lnfw"):
            w = 1.0 + 0.1 * w
        elif name in ("attprojw", "fcprojw"):
            w = (0.02 / math.sqrt(2 * L)) * w
        else:
            w = 0.02 * w
        if name == "wte":
            w = torch.cat([w, torch.zeros(Vp - V, C, dtype=torch.float32)])
        params[name] = w.double().requires_grad_(True)
    return params


def forward(p, tokens, targets, a):
    """Returns (logits (B,T,V), mean cross-entropy loss)."""
    B, T = tokens.shape
    C, NH, V = a.n_embd, a.n_head, a.vocab_size
    HS = C // NH
    x = p["wte"][tokens] + p["wpe"][:T]
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    for l in range(a.n_layer):
        h = F.layer_norm(x, (C,), p["ln1w"][l], p["ln1b"][l], eps=1e-5)
        qkv = h @ p["qkvw"][l].T + p["qkvb"][l]
        q, k, v = (t.view(B, T, NH, HS).transpose(1, 2) for t in qkv.split(C, dim=-1))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(HS)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ p["attprojw"][l].T + p["attprojb"][l]
        h2 = F.layer_norm(x, (C,), p["ln2w"][l], p["ln2b"][l], eps=1e-5)
        m = F.gelu(h2 @ p["fcw"][l].T + p["fcb"][l], approximate="tanh")
        x = x + m @ p["fcprojw"][l].T + p["fcprojb"][l]
    x = F.layer_norm(x, (C,), p["lnfw"], p["lnfb"], eps=1e-5)
    logits = x @ p["wte"][:V].T
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1).long())
    return logits, loss


def f32(t):
    return t.detach().to(torch.float32).contiguous().numpy()


def generate(a):
    torch.manual_seed(a.seed)  # nothing else should draw, but be safe
    a.padded_vocab_size = (a.vocab_size + 127) // 128 * 128
    B, T = a.batch_size, a.seq_len
    assert T <= a.max_seq_len and a.n_embd % a.n_head == 0
    g = torch.Generator().manual_seed(a.seed)
    p = init_params(a, g)
    tokens = torch.randint(0, a.vocab_size, (a.steps, B, T + 1), generator=g, dtype=torch.int64)

    out = [("param." + n, f32(p[n])) for n in NAMES]
    out.append(("tokens", tokens.to(torch.int32).numpy()))

    logits, loss = forward(p, tokens[0, :, :T], tokens[0, :, 1:], a)
    loss.backward()
    out.append(("logits", f32(logits)))
    out.append(("loss", f32(loss.reshape(1))))
    init_loss = loss.item()
    out += [("grad." + n, f32(p[n].grad)) for n in NAMES]
    assert p["wte"].grad[a.vocab_size:].abs().max() == 0

    plist = [p[n] for n in NAMES]
    opt = torch.optim.AdamW(
        [{"params": [p[n] for n in NAMES if n in DECAY], "weight_decay": a.weight_decay},
         {"params": [p[n] for n in NAMES if n not in DECAY], "weight_decay": 0.0}],
        lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps)
    losses, norms = [], []
    for k in range(a.steps):
        opt.zero_grad(set_to_none=True)
        _, loss = forward(p, tokens[k, :, :T], tokens[k, :, 1:], a)
        loss.backward()
        norm = torch.sqrt(sum((q.grad ** 2).sum() for q in plist))
        torch.nn.utils.clip_grad_norm_(plist, a.grad_clip)
        opt.step()
        losses.append(loss.item())
        norms.append(norm.item())
        print(f"step {k}: loss {losses[-1]:.6f}  grad_norm {norms[-1]:.6f}")
    assert p["wte"].detach()[a.vocab_size:].abs().max() == 0
    out.append(("step_losses", f32(torch.tensor(losses, dtype=torch.float64))))
    out.append(("step_grad_norms", f32(torch.tensor(norms, dtype=torch.float64))))
    out += [("final." + n, f32(p[n])) for n in NAMES if n not in FINAL_OMIT]

    meta = {"B": a.batch_size, "T": a.seq_len, "max_seq_len": a.max_seq_len,
            "vocab_size": a.vocab_size, "padded_vocab_size": a.padded_vocab_size,
            "n_layer": a.n_layer, "n_head": a.n_head, "n_embd": a.n_embd, "seed": a.seed,
            "lr": repr(a.lr), "beta1": repr(a.beta1), "beta2": repr(a.beta2),
            "eps": repr(a.eps), "weight_decay": repr(a.weight_decay),
            "grad_clip": repr(a.grad_clip), "steps": a.steps,
            "decay_params": ",".join(n for n in NAMES if n in DECAY),
            "final_omitted": ",".join(n for n in NAMES if n in FINAL_OMIT),
            "generator": "tools/gpt_reference.py", "torch_version": torch.__version__}
    safetensors_io.write(a.out, out, meta)
    print(f"init loss {init_loss:.6f} (ln V = {math.log(a.vocab_size):.4f}); "
          f"wrote {a.out} ({os.path.getsize(a.out)} bytes)")


def check(path):
    tensors, meta = safetensors_io.read(path)
    for k, v in meta.items():
        print(f"meta {k} = {v}")
    for name, arr in tensors.items():
        print(f"{name:20s} {str(arr.dtype):8s} {list(arr.shape)}")
    print(f"{len(tensors)} tensors, {os.path.getsize(path)} bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/gpt_reference.safetensors")
    ap.add_argument("--check", metavar="FILE", help="print names/shapes of a safetensors file")
    ap.add_argument("--batch-size", dest="batch_size", type=int, default=2)
    ap.add_argument("--seq-len", dest="seq_len", type=int, default=37)
    ap.add_argument("--max-seq-len", dest="max_seq_len", type=int, default=40)
    ap.add_argument("--vocab-size", dest="vocab_size", type=int, default=101)
    ap.add_argument("--n-layer", dest="n_layer", type=int, default=2)
    ap.add_argument("--n-head", dest="n_head", type=int, default=3)
    ap.add_argument("--n-embd", dest="n_embd", type=int, default=96)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.95)
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--weight-decay", dest="weight_decay", type=float, default=0.1)
    ap.add_argument("--grad-clip", dest="grad_clip", type=float, default=1.0)
    a = ap.parse_args()
    if a.check:
        check(a.check)
    else:
        generate(a)


if __name__ == "__main__":
    main()
