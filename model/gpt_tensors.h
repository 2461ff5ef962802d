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

// Activations: X(enum, name, elements, layers, wide). Elements are those of one layer's slice (of
// the whole buffer where layers is kOne), over C, NH, BT = B * T, B, T and Vp. Layers says how many
// slices a buffer holds at each model.recompute (core/recipe.h):
//   kOne               one buffer with no layer axis;
//   kAllLayers         a slice per layer at every choice (residual3: each block's output, the
//                      next block's input, is what `block` keeps);
//   kLayersAtNone      a slice per layer with recompute none; with mlp or block one slice, which
//                      the backward pass refills for each layer (the GELU output, from fch);
//   kLayersBelowBlock  a slice per layer with none and mlp; with block one slice, refilled by
//                      running the block's forward again from its input.
// Wide buffers hold 4-byte elements at every precision (fp32 statistics, int32 token ids), the
// others the compute dtype.
#define LMT_GPT_ACTIVATIONS(X)                                                              \
  /* saved for backward */                                                                  \
  X(aEncoded, "encoded", BT * C, kOne, false)                 /* (B, T, C) */               \
  X(aLn1, "ln1", BT * C, kLayersBelowBlock, false)            /* (L, B, T, C) */            \
  X(aLn1Mean, "ln1_mean", BT, kLayersBelowBlock, true)        /* (L, B, T) */               \
  X(aLn1Rstd, "ln1_rstd", BT, kLayersBelowBlock, true)        /* (L, B, T) */               \
  X(aQkv, "qkv", BT * 3 * C, kLayersBelowBlock, false)        /* (L, B, T, 3C) */           \
  X(aAtty, "atty", BT * C, kLayersBelowBlock, false)          /* (L, B, T, C) */            \
  X(aAttLse, "att_lse", B * NH * T, kLayersBelowBlock, true)  /* (L, B, NH, T) */           \
  X(aResidual2, "residual2", BT * C, kLayersBelowBlock, false) /* (L, B, T, C) */            \
  X(aLn2, "ln2", BT * C, kLayersBelowBlock, false)            /* (L, B, T, C) */            \
  X(aLn2Mean, "ln2_mean", BT, kLayersBelowBlock, true)        /* (L, B, T) */               \
  X(aLn2Rstd, "ln2_rstd", BT, kLayersBelowBlock, true)        /* (L, B, T) */               \
  X(aFch, "fch", BT * 4 * C, kLayersBelowBlock, false)        /* (L, B, T, 4C) */           \
  X(aFchGelu, "fch_gelu", BT * 4 * C, kLayersAtNone, false)   /* (L, B, T, 4C) */           \
  X(aResidual3, "residual3", BT * C, kAllLayers, false)       /* (L, B, T, C) */            \
  X(aLnf, "lnf", BT * C, kOne, false)                         /* (B, T, C) */               \
  X(aLnfMean, "lnf_mean", BT, kOne, true)                     /* (B, T) */                  \
  X(aLnfRstd, "lnf_rstd", BT, kOne, true)                     /* (B, T) */                  \
  X(aLogits, "logits", BT * Vp, kOne, false)                  /* (B, T, Vp); dlogits in training */ \
  X(aLosses, "losses", BT, kOne, true)                        /* (B, T) */                  \
  /* backward scratch, reused by every layer */                                             \
  X(aDresidual, "dresidual", BT * C, kOne, false)             /* the residual stream's gradient */ \
  X(aDln, "dln", BT * C, kOne, false)                                                       \
  X(aDqkv, "dqkv", BT * 3 * C, kOne, false)                                                 \
  X(aDatty, "datty", BT * C, kOne, false)                                                   \
  X(aDfch, "dfch", BT * 4 * C, kOne, false)                   /* the GELU input's gradient */ \
  /* token ids (int32) */                                                                   \
  X(aInputs, "inputs", BT, kOne, true)                                                      \
  X(aTargets, "targets", BT, kOne, true)

// A parenthesized shape as a braced list: LMT_GPT_SHAPE (L, C) -> {L, C}.
#define LMT_GPT_SHAPE(...) {__VA_ARGS__}
