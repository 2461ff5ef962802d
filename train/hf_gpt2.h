// Hugging Face's GPT-2 format, both ways (docs/using-your-model.md): a directory with
// config.json (model_type "gpt2") and model.safetensors holding GPT2LMHeadModel's tensors, whose
// four matrices per block are Conv1D weights, stored (in, out): the transpose of ours. The
// embedding and the LM head are tied, and the vocabulary is not padded.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "model/gpt_config.h"

namespace lmt {

namespace data {
class Tokenizer;
}

// "hf:DIR" names a Hugging Face directory wherever a checkpoint is taken.
inline constexpr std::string_view kHfPrefix = "hf:";
inline bool is_hf_spec(std::string_view which) { return which.starts_with(kHfPrefix); }

// Our own tokenizer file, written next to GPT-2's files by export so that lmtrain reads the
// exported directory with exactly the run's tokenizer (char and byte runs have no GPT-2 form).
inline constexpr const char* kHfLmtrainTokenizerFile = "lmtrain_tokenizer.json";

struct HfModel {
  std::string dir;
  GPTConfig cfg;              // the vocabulary padded to vocab_pad_to
  std::vector<float> params;  // arena order (parameter_layout), padded rows zero
};

// Reads DIR/config.json and DIR/model.safetensors (or the shards a model.safetensors.index.json
// lists); F16, BF16 and F64 weights are converted to fp32. Every problem is an lmt::Error naming
// the file and the key: a missing file, an architecture lmtrain's GPT cannot run (with the
// setting that differs), missing, unexpected or misshapen tensors (all of them named), an
// lm_head that is not tied to the embedding.
HfModel read_hf_gpt2(const std::string& dir, int vocab_pad_to);

// What an export wrote.
struct HfExportResult {
  std::string dir;
  std::vector<std::string> files;
  std::string tokenizer_note;  // why GPT-2 tokenizer files were or were not written
};

// Writes config.json, model.safetensors (fp32, GPT2LMHeadModel's names, lm_head tied and so not
// stored) and, with a tokenizer, lmtrain_tokenizer.json plus vocab.json, merges.txt and
// tokenizer_config.json when it is byte-level BPE with <|...|> special tokens. `out` must not
// exist; everything is written into a sibling temporary directory, synced and renamed to `out`,
// so a failure leaves no directory behind. Refuses weights holding NaN or infinity.
// `provenance` is stored under config.json's "lmtrain" key.
HfExportResult write_hf_gpt2(const std::string& out, const GPTConfig& cfg, const std::vector<float>& params,
                             const data::Tokenizer* tokenizer, const nlohmann::json& provenance);

}  // namespace lmt
