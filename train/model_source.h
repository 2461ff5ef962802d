// A model taken from outside the run that uses it: an lmtrain checkpoint (a step directory, or
// a checkpoint root holding `latest`) or a Hugging Face GPT-2 directory ("hf:DIR"), for
// inference (eval, generate, export) and as the starting point of fine-tuning (model.init_from).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "core/recipe.h"
#include "model/gpt.h"
#include "train/device.h"
#include "data/tokenizer.h"
#include "model/gpt_config.h"
#include "train/checkpoint.h"
#include "train/hf_gpt2.h"

namespace lmt {

// A model opened to use it. For an lmtrain checkpoint the recipe is the run's own, parsed and
// validated; for hf:DIR it is a default recipe carrying the model's shape (no data sets, step
// 0), so callers that need data must be given it.
struct InferenceCheckpoint {
  std::string dir;
  bool hf = false;
  LoadedRecipe recipe;
  GPTConfig cfg;
  LoadedCheckpoint checkpoint;  // the model only (tensors.params), verified
};
InferenceCheckpoint open_for_inference(const std::string& which);

// The opened model on the backend `device` picks (fp32 on the CPU, the run's precision on a
// GPU), with its weights in place: what eval, hellaswag and generate run.
struct InferenceModel {
  BackendChoice choice;  // choice.notice: why auto fell back to the CPU, if it did
  std::unique_ptr<GPT> gpt;
};
InferenceModel build_inference_model(const InferenceCheckpoint& model, DeviceKind device);

// The tokenizer the model was trained with: `explicit_path` (--tokenizer) when given; else
// tokenizer.json in the step directory, its run directory or the directory of the recipe's
// data.train; for hf:DIR, lmtrain_tokenizer.json or GPT-2's vocab.json + merges.txt there.
// nullopt when there is none (synthetic data); `looked` lists the places tried.
std::optional<data::Tokenizer> find_model_tokenizer(const InferenceCheckpoint& model, const std::string& explicit_path,
                                                    std::vector<std::string>& looked);

// Weights to start a run from (model.init_from): `spec` is hf:DIR or an lmtrain checkpoint.
struct PretrainedWeights {
  std::string source;         // where they came from, as the recipe named it
  std::string dir;            // the resolved directory
  GPTConfig cfg;
  std::vector<float> params;  // arena order of cfg
};
PretrainedWeights load_pretrained(const std::string& spec);

// The pretrained weights in the arena of `target`, the recipe's model. Every shape key that
// differs is named in one lmt::Error (`where` is the recipe); a longer position table is cropped
// to the recipe's max_seq_len (as nanoGPT's crop_block_size does) and `notice` says so; the
// vocabulary's padding follows the recipe's vocab_pad_to.
std::vector<float> fit_pretrained(const PretrainedWeights& weights, const GPTConfig& target, const std::string& where,
                                  std::string& notice);

// lmtrain export --format hf: the model of `checkpoint` (either kind of source) as a Hugging
// Face GPT-2 directory `out` (train/hf_gpt2.h), with the tokenizer find_model_tokenizer finds.
struct ExportOptions {
  std::string checkpoint;
  std::string out;
  std::string tokenizer;  // --tokenizer; empty: the run's
};
HfExportResult export_model(const ExportOptions& options);

}  // namespace lmt
