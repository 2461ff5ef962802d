// Helpers for tests that run the lmtrain binary (LMTRAIN_BINARY) in a temporary directory.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <stdexcept>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace lmt::testing {

namespace fs = std::filesystem;

// The binary this test program was built with: lmtrain, or another build of the same CLI
// (LMTRAIN_CLI_BINARY, e.g. lmtrain_emu for the CUDA emulator tests).
#ifdef LMTRAIN_CLI_BINARY
inline const std::string kBuiltBinary = LMTRAIN_CLI_BINARY;
#else
inline const std::string kBuiltBinary = LMTRAIN_BINARY;
#endif

// The binary under test: $LMTRAIN_TEST_BINARY when set, else the one it was built with. Test
// programs copied to another machine (tools/gpu_check.sh runs them from a bundle) cannot reach
// the build folder baked in at compile time; the check points the variable at the bundle's copy.
inline std::string lmtrain_binary() {
  const char* override_path = std::getenv("LMTRAIN_TEST_BINARY");
  return override_path && *override_path ? std::string(override_path) : kBuiltBinary;
}

// A loopback TCP port that was free a moment ago (bound to 0, read, closed).
// A port on 127.0.0.1 that nothing listens on now, for a test that must give a fixed port (a
// torchrun-style MASTER_PORT). Drawn below Linux's ephemeral range (32768-60999): a port the
// kernel handed out would soon be another connection's source port, and the tests that open
// hundreds of connections (the store under attack) run beside this one.
inline bool loopback_port_is_free(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return free;
}

inline int free_loopback_port() {
  static std::mt19937 rng(static_cast<unsigned>(::getpid()) * 2654435761u ^
                          static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int port = 20000 + static_cast<int>(rng() % 12000);
    if (loopback_port_is_free(port)) return port;
  }
  throw std::runtime_error("free_loopback_port: no free port in 20000-31999");
}

// The children of `parent` by their RANK variable, from /proc: a launcher's or torchrun agent's
// workers. With `required` (KEY=VALUE), only children whose environment holds that entry.
inline std::map<int, pid_t> children_by_rank(pid_t parent, const std::string& required = "") {
  std::map<int, pid_t> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid != parent) continue;
    std::ifstream environ_file(entry.path() / "environ");
    std::string var;
    int rank = -1;
    bool has_required = required.empty();
    while (std::getline(environ_file, var, '\0')) {
      if (var.rfind("RANK=", 0) == 0) rank = std::stoi(var.substr(5));
      if (var == required) has_required = true;
    }
    if (rank >= 0 && has_required) out[rank] = std::stoi(name);
  }
  return out;
}

inline std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

struct RunResult {
  int status = -1;  // exit status, or -1 when the process did not exit normally
  std::string output;
};

// Runs a shell command in `dir` with stdout and stderr captured together.
inline RunResult run_shell(const TempDir& dir, const std::string& command) {
  RunResult result;
  std::FILE* pipe = ::popen(("cd " + quoted(dir.path().string()) + " && " + command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = ::pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// Runs `lmtrain ARGS` in `dir` with stdout and stderr captured together. Job-launcher variables
// of the calling environment are removed so every case is a single process unless it says otherwise.
// `wrapper` runs in front of the binary (e.g. "timeout -s INT 1").
inline RunResult run_lmtrain(const TempDir& dir, const std::string& args, const std::string& env = "",
                             const std::string& wrapper = "") {
  return run_shell(dir, "env -u RANK -u WORLD_SIZE -u LOCAL_RANK -u LOCAL_WORLD_SIZE "
                        "-u SLURM_PROCID -u SLURM_NTASKS -u SLURM_LOCALID " +
                            env + " " + wrapper + " " + quoted(lmtrain_binary()) + " " + args);
}

inline std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
  std::vector<nlohmann::json> records;
  std::istringstream lines(read_file(path));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    records.push_back(nlohmann::json::parse(line));
  }
  return records;
}

inline bool is_training_record(const nlohmann::json& r) { return r.contains("loss") && r.contains("step") && !r.contains("event"); }

// A run of 30 steps of a 1-layer GPT on a deterministic synthetic corpus: well under a second.
inline std::string tiny_recipe(const TempDir& dir, const std::string& dtype = "fp32") {
  return "# Tiny CPU run for the CLI tests.\n"
         "#   lmtrain train tiny.yaml\n"
         "run:\n"
         "  name: tiny\n"
         "  out_dir: " + (dir.path() / "runs").string() + "\n"
         "  steps: 30\n"
         "  seq_len: 16\n"
         "  micro_batch_size: 4\n"
         "  device: cpu\n"
         "  threads: 1\n"
         "model:\n"
         "  n_layer: 1\n"
         "  n_head: 2\n"
         "  n_embd: 32\n"
         "  max_seq_len: 16\n"
         "data:\n"
         "  source: synthetic\n"
         "  synthetic:\n"
         "    vocab_size: 8\n"
         "    branching: 1\n"
         "    train_tokens: 4096\n"
         "    val_tokens: 1024\n"
         "optimizer:\n"
         "  lr: 1.0e-2\n"
         "precision:\n"
         "  dtype: " + dtype + "\n"
         "eval:\n"
         "  every: 0\n"
         "  batches: 2\n"
         "log:\n"
         "  every: 10\n";
}

// A char-tokenized corpus of `lines` play lines, prepared into dir/prepared.
inline void prepare_char_data(const TempDir& dir, int lines = 300) {
  std::string text;
  for (int i = 0; i < lines; ++i) text += fmt::format("ROMEO: line {} of the play.\nJULIET: an answer.\n", i % 17);
  write_file(dir.path() / "corpus.txt", text);
  REQUIRE(run_lmtrain(dir, "data prepare --input corpus.txt --tokenizer char --out prepared --quiet").status == 0);
}

// A tiny model trained for a few steps on prepare_char_data's corpus (context 32).
inline void train_char_model(const TempDir& dir) {
  prepare_char_data(dir);
  write_file(dir.path() / "char.yaml",
             "run: {name: char, out_dir: runs, steps: 30, seq_len: 32, micro_batch_size: 4, device: cpu, threads: 1}\n"
             "model: {n_layer: 1, n_head: 2, n_embd: 32, max_seq_len: 32}\n"
             "optimizer: {lr: 3e-3}\n"
             "data: {source: shards, train: prepared/train_*.bin, val: prepared/val_*.bin}\n");
  RunResult train = run_lmtrain(dir, "train char.yaml");
  INFO(train.output);
  REQUIRE(train.status == 0);
}


}  // namespace lmt::testing
