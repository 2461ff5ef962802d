// The GPT's tensors, listed once: the parameter tensors of the arena and the activation buffers,
// in storage order. gpt_config.cpp builds the layouts (names, shapes, offsets; the names are the
// checkpoints' tensor names) and gpt.cpp its enums from these same lists, so an index can never
// name another tensor than the layout puts there. Private to model/.
//
// Parameters: X(enum, name, shape, weight decay). The shape is a parenthesized list over the
// dims L (layers), C (channels), Vp (padded vocab) and maxT (max_seq_len).
#pragma once

#define LMT_GPT_PARAMETERS(X)                \
  X(kWte, "wte", (Vp, C), true)              \
  X(kWpe, "wpe", (maxT, C), true)            \
  X(kLn1w, "ln1w", (L, C), false)            \
  X(kLn1b, "ln1b", (L, C), false)            \
  X(kQkvw, "qkvw", (L, 3 * C, C), true)      \
  X(kQkvb, "qkvb", (L, 3 * C), false)        \
  X(kAttprojw, "attprojw", (L, C, C), true)  \
  X(kAttprojb, "attprojb", (L, C), false)    \
  X(kLn2w, "ln2w", (L, C), false)            \
  X(kLn2b, "ln2b", (L, C), false)            \
  X(kFcw, "fcw", (L, 4 * C, C), true)        \
  X(kFcb, "fcb", (L, 4 * C), false)          \
  X(kFcprojw, "fcprojw", (L, C, 4 * C), true) \
  X(kFcprojb, "fcprojb", (L, C), false)      \
  X(kLnfw, "lnfw", (C), false)               \
  X(kLnfb, "lnfb", (C), false)

// Activations: X(enum, name, elements, wide) over L, C, NH, BT = B * T, B, T and Vp; wide buffers
// hold 4-byte elements at every precision (fp32 statistics, int32 token ids), the others the
// compute dtype.
#define LMT_GPT_ACTIVATIONS(X)                                                   \
  /* saved for backward */                                                       \
  X(aEncoded, "encoded", BT * C, false)          /* (B, T, C) */                 \
  X(aLn1, "ln1", L * BT * C, false)              /* (L, B, T, C) */              \
  X(aLn1Mean, "ln1_mean", L * BT, true)          /* (L, B, T) */                 \
  X(aLn1Rstd, "ln1_rstd", L * BT, true)          /* (L, B, T) */                 \
  X(aQkv, "qkv", L * BT * 3 * C, false)          /* (L, B, T, 3C) */             \
  X(aAtty, "atty", L * BT * C, false)            /* (L, B, T, C) */              \
  X(aAttLse, "att_lse", L * B * NH * T, true)    /* (L, B, NH, T) */             \
  X(aResidual2, "residual2", L * BT * C, false)  /* (L, B, T, C) */              \
  X(aLn2, "ln2", L * BT * C, false)              /* (L, B, T, C) */              \
  X(aLn2Mean, "ln2_mean", L * BT, true)          /* (L, B, T) */                 \
  X(aLn2Rstd, "ln2_rstd", L * BT, true)          /* (L, B, T) */                 \
  X(aFch, "fch", L * BT * 4 * C, false)          /* (L, B, T, 4C) */             \
  X(aFchGelu, "fch_gelu", L * BT * 4 * C, false) /* (L, B, T, 4C) */             \
  X(aResidual3, "residual3", L * BT * C, false)  /* (L, B, T, C) */              \
  X(aLnf, "lnf", BT * C, false)                  /* (B, T, C) */                 \
  X(aLnfMean, "lnf_mean", BT, true)              /* (B, T) */                    \
  X(aLnfRstd, "lnf_rstd", BT, true)              /* (B, T) */                    \
  X(aLogits, "logits", BT * Vp, false)           /* (B, T, Vp); dlogits in training */ \
  X(aLosses, "losses", BT, true)                 /* (B, T) */                    \
  /* backward scratch, reused by every layer */                                  \
  X(aDresidual, "dresidual", BT * C, false)      /* the residual stream's gradient */ \
  X(aDln, "dln", BT * C, false)                                                  \
  X(aDqkv, "dqkv", BT * 3 * C, false)                                            \
  X(aDatty, "datty", BT * C, false)                                              \
  X(aDfch, "dfch", BT * 4 * C, false)            /* the GELU input's gradient */ \
  /* token ids (int32) */                                                        \
  X(aInputs, "inputs", BT, true)                                                 \
  X(aTargets, "targets", BT, true)

// A parenthesized shape as a braced list: LMT_GPT_SHAPE (L, C) -> {L, C}.
#define LMT_GPT_SHAPE(...) {__VA_ARGS__}
