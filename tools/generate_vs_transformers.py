"""`lmtrain generate` vs Hugging Face transformers' `generate` on the same weights, same machine.

    /work/venv-hf/bin/python tools/generate_vs_transformers.py --lmtrain build/lmtrain \
        --checkpoint runs/gpt2-random/checkpoints/step_00000001

The checkpoint's weights (lmtrain's llm.c-stacked layout, model.safetensors) are loaded into a
transformers GPT2LMHeadModel: the vocabulary padding is dropped, the four matrices of each block
are transposed into GPT-2's Conv1D layout and lm_head is tied to wte. Then, for each batch size,
both sides decode greedily from the same random prompt (--prompt-len tokens) for --new-tokens
tokens with their KV caches:
  * the tokens of both are compared (they should agree; a near-tie of two logits can flip one);
  * tokens/s = batch * (new_tokens - 1) / seconds of decoding, the seconds being those of a run
    for new_tokens minus those of a run for 1 token (for lmtrain: start-up, checkpoint loading,
    the prompt's prefill and the first token; for transformers: the prefill and the first
    token). Both sides' prefill and set-up are thus left out.
Each measurement is repeated --rounds times, the sides taking turns; the fastest is kept.
Needs torch (Debian's python3-torch) and transformers==4.46.3 in a venv made with
--system-site-packages.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


def load_hf_model(step_dir, torch, transformers):
    state = json.load(open(os.path.join(step_dir, "trainer_state.json")))["model"]
    L, NH, C = state["n_layer"], state["n_head"], state["n_embd"]
    V, T = state["vocab_size"], state["max_seq_len"]
    tensors, _ = safetensors_io.read(os.path.join(step_dir, "model.safetensors"))
    cfg = transformers.GPT2Config(vocab_size=V, n_positions=T, n_embd=C, n_layer=L, n_head=NH,
                                  activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                                  attn_pdrop=0.0, layer_norm_epsilon=1e-5, tie_word_embeddings=True)
    model = transformers.GPT2LMHeadModel(cfg)
    sd = {"transformer.wte.weight": tensors["wte"][:V], "transformer.wpe.weight": tensors["wpe"],
          "transformer.ln_f.weight": tensors["lnfw"], "transformer.ln_f.bias": tensors["lnfb"]}
    for l in range(L):
        p = f"transformer.h.{l}."
        sd[p + "ln_1.weight"], sd[p + "ln_1.bias"] = tensors["ln1w"][l], tensors["ln1b"][l]
        sd[p + "attn.c_attn.weight"], sd[p + "attn.c_attn.bias"] = tensors["qkvw"][l].T, tensors["qkvb"][l]
        sd[p + "attn.c_proj.weight"], sd[p + "attn.c_proj.bias"] = tensors["attprojw"][l].T, tensors["attprojb"][l]
        sd[p + "ln_2.weight"], sd[p + "ln_2.bias"] = tensors["ln2w"][l], tensors["ln2b"][l]
        sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"] = tensors["fcw"][l].T, tensors["fcb"][l]
        sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"] = tensors["fcprojw"][l].T, tensors["fcprojb"][l]
    sd = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("attn.bias") and not k.endswith("masked_bias") and k != "lm_head.weight"]
    if missing or unexpected:
        raise SystemExit(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.eval()
    return model, state


def run_lmtrain(binary, step_dir, prompt, batch, new_tokens, threads):
    cmd = [binary, "generate", "--checkpoint", step_dir, "--prompt-ids", ",".join(map(str, prompt)),
           "--max-new-tokens", str(new_tokens), "--num-samples", str(batch), "--temperature", "0", "--json"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    seconds = time.perf_counter() - start
    return seconds, [json.loads(line)["ids"] for line in out.splitlines() if line.strip()]


def run_transformers(torch, model, prompt, batch, new_tokens):
    ids = torch.tensor([prompt] * batch, dtype=torch.long)
    with torch.no_grad():
        start = time.perf_counter()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             do_sample=False, use_cache=True, pad_token_id=0)
        seconds = time.perf_counter() - start
    return seconds, out[:, len(prompt):].tolist()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lmtrain", required=True)
    ap.add_argument("--checkpoint", required=True, help="a step_* directory")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    import torch
    import transformers
    import transformers.generation.utils
    # Debian's torch 1.13 cannot import torch.distributed.fsdp on Python 3.11 (a dataclass with a
    # mutable default), which generate() imports only to ask whether the model is FSDP-wrapped.
    transformers.generation.utils.is_fsdp_managed_module = lambda module: False
    torch.set_num_threads(args.threads)
    model, state = load_hf_model(args.checkpoint, torch, transformers)
    rng = np.random.default_rng(0)
    prompt = rng.integers(0, state["vocab_size"], args.prompt_len).tolist()
    print(f"model: {state['n_layer']} layers, {state['n_head']} heads, {state['n_embd']} channels, vocab "
          f"{state['vocab_size']}, context {state['max_seq_len']}; prompt {args.prompt_len}, {args.new_tokens} new "
          f"tokens, greedy, {args.threads} threads; torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"{'batch':>5} {'lmtrain tok/s':>14} {'transformers tok/s':>19} {'ratio':>6}  tokens")
    for batch in [int(b) for b in args.batches.split(",")]:
        best = {"lm": float("inf"), "lm1": float("inf"), "hf": float("inf"), "hf1": float("inf")}
        for _ in range(args.rounds):
            t, lm_tokens = run_lmtrain(args.lmtrain, args.checkpoint, prompt, batch, args.new_tokens, args.threads)
            best["lm"] = min(best["lm"], t)
            best["lm1"] = min(best["lm1"], run_lmtrain(args.lmtrain, args.checkpoint, prompt, batch, 1, args.threads)[0])
            t, hf_tokens = run_transformers(torch, model, prompt, batch, args.new_tokens)
            best["hf"] = min(best["hf"], t)
            best["hf1"] = min(best["hf1"], run_transformers(torch, model, prompt, batch, 1)[0])
        agree = sum(a == b for x, y in zip(lm_tokens, hf_tokens) for a, b in zip(x, y))
        total = batch * args.new_tokens
        first_diff = next((i for i, (a, b) in enumerate(zip(lm_tokens[0], hf_tokens[0])) if a != b), None)
        lm_rate = batch * (args.new_tokens - 1) / max(1e-9, best["lm"] - best["lm1"])
        hf_rate = batch * (args.new_tokens - 1) / max(1e-9, best["hf"] - best["hf1"])
        note = "all equal" if agree == total else f"{agree}/{total} equal, first difference at {first_diff}"
        print(f"{batch:>5} {lm_rate:>14.1f} {hf_rate:>19.1f} {lm_rate / hf_rate:>6.2f}  {note}")


if __name__ == "__main__":
    main()
