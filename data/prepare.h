// `lmtrain data prepare`: text files -> train.bin, val.bin (token shards, see shard.h) and
// tokenizer.json (see tokenizer.h) in one output directory.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lmt::data {

struct PrepareOptions {
  std::vector<std::string> inputs;  // text files, concatenated byte for byte in this order
  std::string tokenizer = "char";   // "char" (built from the inputs) or "byte"
  std::string out_dir;              // created if missing; existing outputs are replaced
  double val_fraction = 0.1;        // in [0, 0.5]; the LAST fraction of tokens becomes val
  bool progress = true;             // progress bar on stderr for inputs above ~4 MB
};

struct PrepareSummary {
  int64_t num_bytes = 0;  // total input bytes
  int64_t train_tokens = 0;
  int64_t val_tokens = 0;
  int vocab_size = 0;
  std::vector<std::string> files_written;  // train.bin, val.bin, tokenizer.json (full paths)
};

// Reads, tokenizes and splits the inputs, then writes the three output files.
//
// Split: the first floor(n * (1 - val_fraction)) tokens are train, the rest val — a contiguous
// tail, as nanoGPT's shakespeare_char does (tinyshakespeare: 1,003,854 train and 111,540 val
// characters), so validation text is never interleaved with training text. val_fraction = 0
// writes an empty val.bin.
//
// All outputs are written under temporary names (removed on failure) and renamed only once all
// three are complete, so an error leaves out_dir's earlier contents as they were. Option and
// input problems are lmt::Error naming the option or file; options are checked before
// anything is read or created.
PrepareSummary prepare_data(const PrepareOptions& options);

}  // namespace lmt::data
