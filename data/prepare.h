// `lmtrain data prepare`: text files -> numbered train/val token shards (see shard.h), the
// tokenizer (see tokenizer.h) and a summary, prepare.json, in one output directory.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lmt::data {

struct PrepareOptions {
  // Files or globs, in this order (a glob's matches sorted by name). A `.jsonl` file holds one
  // document per line (a JSON object; the text is under json_key); any other file is text.
  std::vector<std::string> inputs;
  // "char" (built from the inputs), "byte", or a tokenizer file: tok.json from
  // `lmtrain data tokenizer train`, or GPT-2's vocab.json with merges.txt beside it.
  std::string tokenizer = "char";
  std::string out_dir;               // created if missing
  double val_fraction = 0.1;         // in [0, 0.5]
  // "documents": every k-th document goes to val (exactly floor(n * val_fraction) of them,
  // evenly spread); "tail": the last val_fraction of all tokens; "auto": tail for a single text
  // file without doc_separator, documents otherwise.
  std::string split = "auto";
  std::string doc_separator;         // splits text files into documents; empty: a file is one
  std::string json_key = "text";
  int64_t shard_tokens = 100'000'000;  // tokens per shard (the last one may be shorter)
  int threads = 0;                   // encoding threads; 0 = all cores
  bool progress = true;              // progress bar on stderr for inputs above ~4 MB
};

struct PrepareSummary {
  int64_t num_bytes = 0;  // total input bytes
  int64_t documents = 0;
  int64_t val_documents = 0;
  int64_t train_tokens = 0;
  int64_t val_tokens = 0;
  int vocab_size = 0;
  std::string split;                  // "documents" or "tail"
  bool end_of_text = false;           // documents are preceded by the end-of-text token
  std::vector<std::string> train_shards, val_shards;  // full paths
  std::vector<std::string> files_written;  // shards, tokenizer.json, prepare.json
  double seconds = 0;
};

// Reads, tokenizes and splits the inputs and writes the outputs.
//
// With a tokenizer that has an end-of-text token (BPE), every document is preceded by it, as
// llm.c's shards are. Shards are named train_000000.bin, val_000000.bin, ... Everything is
// written into a temporary folder inside out_dir and moved into place only once complete, and
// shards left from an earlier, larger run of the same names are removed, so a glob such as
// out_dir/train_*.bin always names exactly this run's shards. Option and input problems are
// lmt::Error naming the option, file or line; options are checked before anything is read.
PrepareSummary prepare_data(const PrepareOptions& options);

}  // namespace lmt::data
