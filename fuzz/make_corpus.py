#!/usr/bin/env python3
"""Writes the seed corpus of the harnesses (fuzz/corpus/NAME/): valid examples of each format
plus the bad cases the unit tests check. Run from the source tree: python3 fuzz/make_corpus.py.
The checkpoint and hf_gpt2 seeds are the files those two harnesses save at start-up (a tiny
model's checkpoint and export), taken from their scratch folder under $TMPDIR, plus hand-written
bad cases; this script does not write them. Reproducers of fixed crashes are named crash-*."""
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
SEP = b"\n@@@@\n"


def put(name, seed, data):
    folder = os.path.join(ROOT, name)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, seed), "wb") as f:
        f.write(data)


def recipes():
    src = os.path.join(os.path.dirname(ROOT), "..", "recipes")
    for name in ("quickstart.yaml", "shakespeare-char.yaml", "shakespeare-bpe.yaml", "gpt2-124m.yaml"):
        with open(os.path.join(src, name), "rb") as f:
            put("recipe", name, f.read())
    put("recipe", "set-steps", "--set run.steps=5\nrun:\n  name: x\n")
    put("recipe", "set-nested", "--set run.steps.x=5\n")
    put("recipe", "set-model", "--set model.n_layer=2\n--set optimizer.lr=1e-3\nmodel:\n  n_embd: 64\n  n_head: 4\n")
    put("recipe", "unknown-key", "run:\n  stepz: 3\n")
    put("recipe", "wrong-type", "run:\n  steps: many\nmodel: [1, 2]\n")
    put("recipe", "bad-yaml", "run: {steps: 3\n")
    put("recipe", "huge-sizes", "run:\n  micro_batch_size: 1000000000000\nmodel:\n  n_embd: 1000000000\n")
    put("recipe", "dotdot-name", "run:\n  name: ..\n")
    put("recipe", "nested", "a: " + "[" * 200 + "]" * 200 + "\n")
    put("recipe", "synthetic", "data:\n  source: synthetic\n  train: x.bin\n  format: llmc\n")


def hostfiles():
    good = "# the cluster\nworker-1 slots=4\n\n  worker-2   slots=2   # second node\n10.0.0.3 slots=1\n"
    put("hostfile", "three-hosts", good)
    put("hostfile", "include", "--include worker-1:0,2@10.0.0.3\n" + good)
    put("hostfile", "exclude", "--exclude worker-2\n--num-nodes \x02\n--nproc-per-node \x01\n" + good)
    for i, bad in enumerate(["a slots=1\nb\n", "a slots=x\n", "a gpus=2\n", "a slots=0\n", "a slots=2 b slots=2\n",
                             "a slots=1\n# x\na slots=2\n", "a;rm slots=1\n", "-oProxyCommand=x slots=1\n",
                             "# only comments\n\n", "127.0.0.1 slots=100000\n", "h slots=2000000000\n"]):
        put("hostfile", f"bad-{i}", bad)


def env_files():
    put("env_file", "good", "# NCCL settings\nNCCL_DEBUG=INFO\n\nexport OMP_NUM_THREADS=4\r\nLMTRAIN_X=a=b\nEMPTY=\n")
    for i, bad in enumerate(["A=1\nnot a variable\n", "1X=2\n", "A B=2\n", "export\n", "=x\n"]):
        put("env_file", f"bad-{i}", bad)


def dist_env():
    for i, nodes in enumerate(["node[07-09,12],gpu1", "gpu1,node[1-2]", "single", "n[3]", "n[1-2", "a[01-02]",
                               "x[9999999999999999999-1]", "[]", "a[2-1]",
                               "rack[1-2]-node[01-02]", "n[098-100],a[1-2],b3", "a[0-999]b[0-999]"]):
        put("dist_env", f"nodelist-{i}", nodes)
    put("dist_env", "slurm", "SLURM_PROCID=1\nSLURM_NTASKS=2\nSLURM_JOB_NODELIST=a[01-02]\nSLURM_JOB_ID=77\nSLURM_STEP_ID=3\n")
    put("dist_env", "torchrun", "RANK=1\nLOCAL_RANK=1\nWORLD_SIZE=2\nLOCAL_WORLD_SIZE=2\nMASTER_ADDR=127.0.0.1\nMASTER_PORT=29500\n")
    put("dist_env", "torchrun-bad", "RANK=3\nWORLD_SIZE=2\nMASTER_PORT=99999999999\n")


def lmtrain_shard(tokens, vocab, token_bytes=2, version=1, magic=b"LMTSHARD", num=None):
    head = magic + struct.pack("<IIQQ", version, token_bytes, len(tokens) if num is None else num, vocab) + bytes(32)
    fmt = "<%d%s" % (len(tokens), "H" if token_bytes == 2 else "I")
    return head + struct.pack(fmt, *tokens)


def llmc(tokens, magic=20240520, version=1, num=None):
    head = struct.pack("<iii", magic, version, len(tokens) if num is None else num) + bytes(4 * 253)
    return head + struct.pack("<%dH" % len(tokens), *tokens)


def shards():
    # First byte: format (byte % 3: lmtrain, llmc, nanogpt) and vocab (byte / 3 % 4: 0, 65, 50257, 100000).
    toks = [1, 2, 3, 64, 0, 5, 7, 9]
    put("shard", "lmtrain-2byte", bytes([0]) + lmtrain_shard(toks, 65))
    put("shard", "lmtrain-4byte", bytes([0]) + lmtrain_shard([70000, 1, 2], 100000, token_bytes=4))
    put("shard", "lmtrain-vocab-65", bytes([3]) + lmtrain_shard(toks, 65))
    put("shard", "lmtrain-id-too-big", bytes([0]) + lmtrain_shard([1, 65], 65))
    put("shard", "lmtrain-truncated", bytes([0]) + lmtrain_shard(toks, 65)[:-3])
    put("shard", "lmtrain-bad-width", bytes([0]) + lmtrain_shard(toks, 65, token_bytes=3))
    put("shard", "lmtrain-huge-count", bytes([0]) + lmtrain_shard(toks, 65, num=2 ** 62))
    put("shard", "llmc", bytes([1 + 3 * 2]) + llmc(toks))
    put("shard", "llmc-no-vocab", bytes([1]) + llmc(toks))
    put("shard", "llmc-bad-magic", bytes([7]) + llmc(toks, magic=1234))
    put("shard", "llmc-negative-count", bytes([7]) + llmc(toks, num=-1))
    put("shard", "nanogpt", bytes([2 + 3 * 2]) + struct.pack("<8H", *toks))
    put("shard", "nanogpt-odd", bytes([2 + 3 * 1]) + b"\x01\x00\x02")


def safetensors_bytes(tensors, metadata=None, header_len=None):
    header, blob = {}, b""
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if header_len is None else header_len) + text + blob


def safetensors():
    f32 = struct.pack("<6f", *range(6))
    put("safetensors", "f32", safetensors_bytes({"w": ("F32", [2, 3], f32)}, {"step": "3"}))
    put("safetensors", "mixed", safetensors_bytes({"a": ("F16", [2], b"\x00\x3c\x00\x40"), "b": ("BF16", [1], b"\x80\x3f"),
                                                  "c": ("I32", [2], struct.pack("<2i", 7, -1)),
                                                  "d": ("F64", [1], struct.pack("<d", 0.5))}))
    put("safetensors", "scalar-and-empty", safetensors_bytes({"s": ("F32", [], b"\x00\x00\x80\x3f"), "e": ("F32", [0], b"")}))
    put("safetensors", "bad-offsets", struct.pack("<Q", 60) + b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,99]}}    ')
    put("safetensors", "shape-mismatch", safetensors_bytes({"w": ("F32", [4, 4], f32)}))
    put("safetensors", "header-too-long", safetensors_bytes({"w": ("F32", [1], b"\0\0\0\0")}, header_len=2 ** 40))
    put("safetensors", "unknown-dtype", safetensors_bytes({"w": ("Q4", [2], b"\0\0")}))
    put("safetensors", "not-json", struct.pack("<Q", 5) + b"{abc}")


def bytes_to_unicode():
    # GPT-2's alphabet: printable bytes stand for themselves, the others for 256 + n.
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def tokenizers():
    put("tokenizer_json", "char", json.dumps({"format": "lmtrain-tokenizer", "version": 1, "kind": "char",
                                              "vocab_size": 4, "vocab": ["\n", " ", "a", "\u00e9"]}))
    put("tokenizer_json", "byte", json.dumps({"format": "lmtrain-tokenizer", "version": 1, "kind": "byte", "vocab_size": 256}))
    table = bytes_to_unicode()
    tokens = [table[b] for b in range(256)]
    merges = [[table[ord("t")], table[ord("h")]], [table[ord(" ")], table[ord("t")]]]
    bpe_tokens = tokens + ["th", table[ord(" ")] + "t", "<|endoftext|>"]
    put("tokenizer_json", "bpe", json.dumps({"format": "lmtrain-tokenizer", "version": 1, "kind": "bpe", "vocab_size": 259,
                                             "pretokenizer": "gpt2", "special_tokens": {"<|endoftext|>": 258},
                                             "tokens": bpe_tokens[:258] + ["<|endoftext|>"],
                                             "merges": [[ord("t"), ord("h")], [ord(" "), ord("t")]]}))
    put("tokenizer_json", "char-duplicate", '{"format": "lmtrain-tokenizer", "version": 1, "kind": "char", "vocab": ["a", "a"]}')
    put("tokenizer_json", "char-two-chars", '{"format": "lmtrain-tokenizer", "version": 1, "kind": "char", "vocab": ["ab"]}')
    put("tokenizer_json", "wrong-version", '{"format": "lmtrain-tokenizer", "version": 2, "kind": "char", "vocab": ["a"]}')
    put("tokenizer_json", "bpe-bad-merge", json.dumps({"format": "lmtrain-tokenizer", "version": 1, "kind": "bpe", "vocab_size": 257,
                                                       "pretokenizer": "gpt2", "special_tokens": {}, "tokens": tokens + ["x"],
                                                       "merges": [[999, -1]]}))
    put("tokenizer_json", "not-json", "{\"format\": ")
    vocab = {tok: i for i, tok in enumerate(tokens)}
    vocab[table[ord("t")] + table[ord("h")]] = 256
    vocab[table[ord(" ")] + table[ord("t")]] = 257
    vocab["<|endoftext|>"] = 258
    merges_txt = "#version: 0.2\n%s %s\n%s %s\n" % (table[ord("t")], table[ord("h")], table[ord(" ")], table[ord("t")])
    put("gpt2_vocab", "small", json.dumps(vocab).encode() + SEP + merges_txt.encode())
    put("gpt2_vocab", "merge-unknown", json.dumps(vocab).encode() + SEP + "#version: 0.2\nq z\nab\n".encode())
    put("gpt2_vocab", "vocab-not-object", b"[1, 2]" + SEP + merges_txt.encode())
    put("gpt2_vocab", "duplicate-id", json.dumps({"a": 0, "b": 0}).encode() + SEP + b"#version: 0.2\n")


def pretokenize():
    put("pretokenize", "english", "Hello, world! It's 2024: we've   got  tabs\tand\nnewlines.\n\n")
    put("pretokenize", "unicode", "caf\u00e9 \u20ac \u4e2d\u6587 \U0001F600 \u0301combining")
    put("pretokenize", "invalid-utf8", b"ok \xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80 \xe0\x80\xaf \xff end")
    put("pretokenize", "special", "a<|endoftext|>b 's 't 're 've 'm 'll 'd")


def hellaswag():
    put("hellaswag", "good", '{"ctx": "a b", "endings": ["c", "d"], "label": 1, "ind": 4}\n\n'
                              '{"ctx": "x", "endings": ["y", "z", "w"], "label": "2"}\n')
    first = '{"ctx": "a", "endings": ["b", "c"], "label": 0}\n'
    for i, bad in enumerate(['{"ctx": "a"', '[1]', '{"endings": ["b", "c"], "label": 0}',
                             '{"ctx": "a", "endings": ["b"], "label": 0}', '{"ctx": "a", "endings": ["b", 3], "label": 0}',
                             '{"ctx": "a", "endings": ["b", "c"]}', '{"ctx": "a", "endings": ["b", "c"], "label": 2}',
                             '{"ctx": "a", "endings": ["b", "c"], "label": "x"}',
                             '{"ctx": "a", "endings": ["b", "c"], "label": -1}',
                             '{"ctx": "a", "endings": ["b", "c"], "label": 1e30}',
                             '{"ctx": "a", "endings": ["b", "c"], "label": "99999999999999999999"}']):
        put("hellaswag", f"bad-{i}", first + bad + "\n")
    put("hellaswag", "empty", "\n\n")


def store():
    # First byte: how many of the following bytes arrive first.
    def hello(secret, magic=b"LMTSTORE", version=1, length=None):
        return magic + struct.pack("<II", version, len(secret) if length is None else length) + secret

    def request(op, key, value):
        return bytes([op]) + struct.pack("<I", len(key)) + key + struct.pack("<Q", len(value)) + value

    session = hello(b"0123456789abcdef") + request(1, b"k", b"v") + request(2, b"k", b"") + \
        request(3, b"n", struct.pack("<q", 5)) + request(4, b"k", b"")
    put("store", "session", bytes([255]) + session)
    put("store", "session-split", bytes([20]) + session)
    put("store", "bad-magic", bytes([255]) + hello(b"s", magic=b"HTTP/1.1"))
    put("store", "huge-secret", bytes([255]) + hello(b"", length=2 ** 31))
    put("store", "huge-value", bytes([255]) + hello(b"s") + b"\x01\x01\x00\x00\x00k" + struct.pack("<Q", 2 ** 32))
    put("store", "half-message", bytes([255]) + hello(b"s") + b"\x02\x05\x00\x00\x00ke")


if __name__ == "__main__":
    recipes()
    hostfiles()
    env_files()
    dist_env()
    shards()
    safetensors()
    tokenizers()
    pretokenize()
    hellaswag()
    store()
