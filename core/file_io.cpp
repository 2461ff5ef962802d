#include "core/file_io.h"

#include <fmt/format.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace lmt {

namespace fs = std::filesystem;

void check_regular_file(const std::string& path, std::string_view what) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory)  // a symlink loop, a permission on the way
    throw Error(fmt::format("{} '{}' cannot be reached: {}", what, path, ec.message()));
  if (!fs::exists(status)) {
    throw Error(fmt::format("{} '{}' does not exist; check the path", what, path));
  }
  if (fs::is_directory(status)) {
    throw Error(fmt::format("{} '{}' is a directory; pass a file", what, path));
  }
  // A device, a FIFO or a socket would be read without end (/dev/zero) or block forever.
  if (!fs::is_regular_file(status))
    throw Error(fmt::format("{} '{}' is not a regular file (a device, pipe or socket); pass a file", what, path));
}

void check_directory_creatable(const std::string& path, std::string_view what) {
  if (path.empty()) return;  // the current directory
  std::error_code ec;
  fs::path probe = fs::path(path);
  // The nearest part of the path that exists decides: it must be a directory we may write to.
  while (true) {
    const fs::file_status status = fs::status(probe, ec);
    // ENOTDIR: a file further up the path, which the loop reaches and names.
    if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory)
      throw Error(fmt::format("{} '{}' cannot be created: '{}' cannot be reached: {}", what, path,
                              probe.string(), ec.message()));
    if (fs::exists(status)) {
      if (!fs::is_directory(status))
        throw Error(fmt::format("{} '{}' cannot be created: '{}' exists and is not a directory; choose "
                                "another path",
                                what, path, probe.string()));
      if (::access(probe.c_str(), W_OK | X_OK) != 0)
        throw Error(fmt::format("{} '{}' cannot be created: '{}' is not writable ({}); choose another "
                                "path or fix its permissions",
                                what, path, probe.string(), std::strerror(errno)));
      return;
    }
    const fs::path parent = probe.parent_path();
    if (parent == probe) return;  // the root, which exists
    probe = parent.empty() ? fs::path(".") : parent;  // a relative path's base is the current directory
  }
}

void create_directories_checked(const std::string& path, std::string_view what) {
  check_directory_creatable(path, what);
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec || !fs::is_directory(path, ec))
    throw Error(fmt::format("{} '{}' cannot be created: {}; choose another path or fix its permissions",
                            what, path, ec ? ec.message() : "it is not a directory"));
}

fs::file_type file_kind(const std::string& path, std::string_view what) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory) return fs::file_type::not_found;
  if (ec) throw Error(fmt::format("{} '{}' cannot be reached: {}", what, path, ec.message()));
  return status.type();
}

std::string read_file_bytes(const std::string& path, std::string_view what) {
  check_regular_file(path, what);
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    throw Error(fmt::format("{} '{}' cannot be opened: {}; check its permissions", what, path,
                            std::strerror(errno)));
  }
  std::string bytes;
  char buffer[1 << 16];
  size_t num_read = 0;
  // Read until EOF rather than trusting file_size(): pipes and /proc files report 0.
  while ((num_read = std::fread(buffer, 1, sizeof(buffer), file)) > 0) bytes.append(buffer, num_read);
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) throw Error(fmt::format("{} '{}': read error; check the file and the disk", what, path));
  return bytes;
}

OutputFile::OutputFile(std::string path) : path_(std::move(path)) {
  file_ = std::fopen(path_.c_str(), "wb");
  if (file_ == nullptr) {
    throw Error(fmt::format("cannot create '{}': {}; check that the directory exists and is writable",
                            path_, std::strerror(errno)));
  }
}

OutputFile::~OutputFile() {
  if (file_ != nullptr) {
    std::fclose(file_);
    remove_quietly(path_);
  }
}

void OutputFile::write(const void* data, size_t num_bytes) {
  if (num_bytes == 0) return;
  if (std::fwrite(data, 1, num_bytes, file_) != num_bytes) {
    throw Error(fmt::format("writing '{}' failed: {} (disk full?)", path_, std::strerror(errno)));
  }
}

void OutputFile::finish() {
  // fsync before the caller renames: otherwise a crash can leave the new name pointing at a
  // file whose data never reached the disk.
  const bool ok = std::fflush(file_) == 0 && ::fsync(fileno(file_)) == 0;
  const int saved_errno = errno;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!ok || !closed) {
    remove_quietly(path_);
    throw Error(fmt::format("writing '{}' failed: {} (disk full?)", path_,
                            std::strerror(ok ? errno : saved_errno)));
  }
}

void rename_file(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) {
    throw Error(fmt::format("cannot rename '{}' to '{}': {}; check permissions of the directory",
                            from, to, ec.message()));
  }
}

void remove_quietly(const std::string& path) noexcept {
  std::error_code ec;
  // Never a directory: cleanup must not delete something this code did not create.
  if (fs::is_directory(fs::symlink_status(path, ec))) return;
  fs::remove(path, ec);
}

void sync_directory(const std::string& dir) noexcept {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

void write_file_atomic(const std::string& path, std::string_view contents) {
  const std::string temp_path = path + ".tmp";
  {
    OutputFile out(temp_path);
    out.write(contents);
    out.finish();
  }
  try {
    rename_file(temp_path, path);
  } catch (...) {
    remove_quietly(temp_path);
    throw;
  }
}

}  // namespace lmt
