// File helpers: whole-file reads with clear errors, and output files that are either complete
// or absent (temporary name, fsync, rename).
#pragma once
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

namespace lmt {

// Throws lmt::Error unless `path` is a regular file (after symlinks): missing, a directory, a
// device, FIFO or socket, or unreachable (a symlink loop) each get their own message naming
// `what` (the file's role, "input text file") and the path.
void check_regular_file(const std::string& path, std::string_view what);

// Throws lmt::Error unless `path` is a directory this process can write into, or could be
// created as one: the path, or its nearest existing ancestor, must be a writable directory
// (not a file, not read-only, reachable). Creates nothing, so a command can check every
// output location before it writes anything. `what` names the role ("run directory").
void check_directory_creatable(const std::string& path, std::string_view what);

// create_directories with the same checks and an lmt::Error naming `what`, the path and the
// reason (instead of std::filesystem_error).
void create_directories_checked(const std::string& path, std::string_view what);

// What is at `path` after symlinks: file_type::not_found when nothing is (or a part of the path
// is a file), the type otherwise. A path that cannot be reached (a symlink loop, a permission
// on the way) throws lmt::Error naming `what` and the path, where std::filesystem would throw
// filesystem_error.
std::filesystem::file_type file_kind(const std::string& path, std::string_view what);

// Reads a whole file (check_regular_file first). `what` names the file's role in error messages.
std::string read_file_bytes(const std::string& path, std::string_view what);

// A file being written. finish() flushes it to disk (fflush + fsync) and closes it; a file that
// is destroyed before finish() (an exception, a disk-full error) is removed, so a failed write
// leaves nothing behind that could be mistaken for output.
class OutputFile {
 public:
  explicit OutputFile(std::string path);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void write(const void* data, size_t num_bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  void finish();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// rename(2) with an lmt::Error naming both paths. Atomic within one file system, which is why
// temporary files are always created next to their final name.
void rename_file(const std::string& from, const std::string& to);

// Removes a file (never a directory) if it exists, ignoring errors (cleanup paths only).
void remove_quietly(const std::string& path) noexcept;

// fsync on a directory, so a rename inside it survives a crash. Errors are ignored on file
// systems that do not support it (the rename itself already happened).
void sync_directory(const std::string& dir) noexcept;

// Writes `contents` to path + ".tmp", syncs it and renames it over `path`: readers see either
// the old file or the complete new one, never a prefix.
void write_file_atomic(const std::string& path, std::string_view contents);

}  // namespace lmt
