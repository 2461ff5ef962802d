#!/usr/bin/env python3
"""Reference figures from Hugging Face transformers, for lmtrain's tests of its GPT-2 import and
export (tests/train/test_hf_transformers.cpp). Needs torch and transformers (tools/setup-test-env.sh).

  random  --out DIR --seed S --layers L --heads H --embd C --vocab V --positions P [--dtype D]
          creates a random GPT2LMHeadModel and saves it with save_pretrained (safetensors)
  run     --model DIR --ids 1,2,3 [--new-tokens N] [--text TEXT] --out FILE
          loads DIR with from_pretrained and writes FILE (safetensors): "logits" (T, V) of the ids,
          "greedy" (N,) the greedy continuation of the ids, and with --text "text_ids", the ids
          GPT2Tokenizer gives the text (DIR must hold vocab.json + merges.txt)
  hellaswag --model DIR --data FILE.jsonl --out FILE.json
          scores HellaSwag-style examples as llm.c does and writes {"acc", "acc_norm", "predictions"}
"""
import argparse
import json
import sys


def load_transformers():
    import torch
    import transformers
    # torch 1.13 on Python 3.11: transformers' FSDP probe imports a torch module that fails there.
    transformers.generation.utils.is_fsdp_managed_module = lambda module: False
    torch.set_num_threads(1)
    return torch, transformers


def cmd_random(args):
    torch, transformers = load_transformers()
    torch.manual_seed(args.seed)
    cfg = transformers.GPT2Config(vocab_size=args.vocab, n_positions=args.positions, n_embd=args.embd,
                                  n_layer=args.layers, n_head=args.heads, resid_pdrop=0.0, embd_pdrop=0.0,
                                  attn_pdrop=0.0, bos_token_id=None, eos_token_id=None)
    model = transformers.GPT2LMHeadModel(cfg)
    with torch.no_grad():  # non-zero biases and layernorm parameters, so every tensor's mapping is exercised
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(torch.randn_like(p) * 0.1)
    model = model.to(getattr(torch, args.dtype))
    model.save_pretrained(args.out, safe_serialization=True)


def cmd_run(args):
    torch, transformers = load_transformers()
    from safetensors.torch import save_file
    model = transformers.GPT2LMHeadModel.from_pretrained(args.model).float().eval()
    ids = torch.tensor([[int(x) for x in args.ids.split(",")]], dtype=torch.long)
    out = {}
    with torch.no_grad():
        out["logits"] = model(ids).logits[0].contiguous()
        if args.new_tokens > 0:
            gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.new_tokens,
                                 min_new_tokens=args.new_tokens, do_sample=False, pad_token_id=0)
            out["greedy"] = gen[0, ids.shape[1]:].to(torch.int32).contiguous()
    if args.text is not None:
        tokenizer = transformers.GPT2Tokenizer.from_pretrained(args.model)
        out["text_ids"] = torch.tensor(tokenizer.encode(args.text), dtype=torch.int32)
    save_file(out, args.out)


def cmd_hellaswag(args):
    torch, transformers = load_transformers()
    import torch.nn.functional as F
    model = transformers.GPT2LMHeadModel.from_pretrained(args.model).float().eval()
    tokenizer = transformers.GPT2Tokenizer.from_pretrained(args.model)
    correct = correct_norm = total = 0
    predictions = []
    for line in open(args.data, encoding="utf-8"):
        if not line.strip():
            continue
        ex = json.loads(line)
        ctx = tokenizer.encode(ex["ctx"])
        sum_losses, mean_losses = [], []
        for ending in ex["endings"]:
            end = tokenizer.encode(" " + ending)
            ids = torch.tensor([ctx + end], dtype=torch.long)
            with torch.no_grad():
                logits = model(ids).logits[0]
            losses = F.cross_entropy(logits[:-1], ids[0, 1:], reduction="none")[len(ctx) - 1:]
            sum_losses.append(losses.sum().item())
            mean_losses.append(losses.mean().item())
        pred = min(range(len(sum_losses)), key=lambda i: sum_losses[i])
        pred_norm = min(range(len(mean_losses)), key=lambda i: mean_losses[i])
        predictions.append({"pred": pred, "pred_norm": pred_norm, "sum_losses": sum_losses, "mean_losses": mean_losses})
        correct += pred == int(ex["label"])
        correct_norm += pred_norm == int(ex["label"])
        total += 1
    json.dump({"acc": correct / total, "acc_norm": correct_norm / total, "examples": total,
               "predictions": predictions}, open(args.out, "w"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("random")
    r.add_argument("--out", required=True)
    r.add_argument("--seed", type=int, default=0)
    for key, default in (("layers", 2), ("heads", 4), ("embd", 64), ("vocab", 101), ("positions", 64)):
        r.add_argument("--" + key, type=int, default=default)
    r.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    r.set_defaults(run=cmd_random)
    g = sub.add_parser("run")
    g.add_argument("--model", required=True)
    g.add_argument("--ids", required=True)
    g.add_argument("--new-tokens", type=int, default=0)
    g.add_argument("--text")
    g.add_argument("--out", required=True)
    g.set_defaults(run=cmd_run)
    h = sub.add_parser("hellaswag")
    h.add_argument("--model", required=True)
    h.add_argument("--data", required=True)
    h.add_argument("--out", required=True)
    h.set_defaults(run=cmd_hellaswag)
    args = ap.parse_args()
    args.run(args)


if __name__ == "__main__":
    sys.exit(main())
