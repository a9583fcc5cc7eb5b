// CURVE key files. Key material goes through libzmq only (zmq_curve_keypair,
// zmq_curve_public, zmq_z85_*); buffers that held a secret key are wiped
// before they are freed.
#include "gearmesh/keys/keys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace gearmesh::keys {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view secret_begin = "-----BEGIN GEARMESH CURVE SECRET KEY-----";
constexpr std::string_view secret_end = "-----END GEARMESH CURVE SECRET KEY-----";
constexpr std::string_view z85_alphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Overwrites memory that held key material; not optimised away.
void wipe(void* p, std::size_t n) noexcept {
  if (n > 0) ::explicit_bzero(p, n);
}

/// A std::string holding secret text, wiped when it goes out of scope.
struct secret_text {
  std::string s;
  secret_text() = default;
  secret_text(const secret_text&) = delete;
  secret_text& operator=(const secret_text&) = delete;
  ~secret_text() { wipe(s.data(), s.size()); }
};

std::string errno_text(int e) {
  return std::generic_category().message(e);
}

std::string mode_text(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

std::string_view trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

/// What a key file looks like, judged from its content alone.
bool looks_like_secret_key_file(std::string_view content) {
  return content.find(secret_begin) != std::string_view::npos;
}

/// The content of a key file, read through one descriptor: the checks
/// (regular file, mode, size) apply to exactly what is read.
status read_key_file(const fs::path& path, bool secret, std::string& out) {
  // O_NONBLOCK: a FIFO in place of a key file must not hang the node.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT) return {errc::not_found, path.string() + ": no such key file"};
    return {errc::storage, path.string() + ": cannot open: " + errno_text(e)};
  }
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_fd{fd};

  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return {errc::storage, path.string() + ": cannot stat: " + errno_text(errno)};
  }
  if (!S_ISREG(st.st_mode)) return {errc::bad_config, path.string() + ": not a regular file"};
  if (secret && (st.st_mode & 077) != 0) {
    return {errc::bad_config,
            path.string() + ": permissions " + mode_text(st.st_mode) +
                " are too open: a secret key file must not be accessible by group or others; "
                "run `chmod 600 " +
                path.string() + "`"};
  }
  if (static_cast<std::uint64_t>(st.st_size) > key_file_bytes_max) {
    return {errc::bad_config, path.string() + ": " + std::to_string(st.st_size) +
                                  " bytes is too large for a key file (at most " +
                                  std::to_string(key_file_bytes_max) + ")"};
  }
  out.assign(key_file_bytes_max + 1, '\0');
  std::size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      wipe(out.data(), out.size());
      return {errc::storage, path.string() + ": cannot read: " + errno_text(e)};
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got > key_file_bytes_max) {  // grew since fstat
    wipe(out.data(), out.size());
    return {errc::bad_config, path.string() + ": too large for a key file"};
  }
  out.resize(got);
  return status::ok();
}

/// Parses the node.key form (see keys.hpp) into a secret key.
result<curve_key> parse_secret_key_file(const fs::path& path, std::string_view content) {
  std::vector<std::string_view> lines;
  std::string_view rest = content;
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    const auto line = trim(rest.substr(0, nl));
    if (!line.empty()) lines.push_back(line);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
  }
  const auto bad = [&](const std::string& what) {
    return status{errc::bad_config, path.string() + ": " + what};
  };
  if (lines.empty()) return bad("empty; expected a secret key written by `gearmesh keys generate`");
  if (lines.front() != secret_begin) {
    if (lines.size() == 1 && lines.front().size() == key_z85_chars) {
      return bad(
          "holds a bare key, the form of a public key file (node.pub); a secret key file is the "
          "node.key written by `gearmesh keys generate`");
    }
    return bad("not a Gearmesh secret key file: the first line must be " +
               std::string(secret_begin));
  }
  if (lines.size() != 3 || lines[2] != secret_end) {
    return bad("not a Gearmesh secret key file: expected the key on one line between " +
               std::string(secret_begin) + " and " + std::string(secret_end));
  }
  auto key = from_z85(lines[1]);
  if (!key) return bad("bad secret key: " + key.error().message());
  return key;
}

// ----------------------------------------------------------------- writing

/// Writes `content` to a new temporary file in `dir` with `mode`, synced.
/// Returns its path.
result<fs::path> write_temp(const fs::path& dir, const char* name, std::string_view content,
                            mode_t mode) {
  // mkostemp: O_CREAT|O_EXCL, mode 0600 (or less under the umask). fchmod then
  // sets exactly `mode` before a byte is written, whatever the umask is.
  std::string templ = (dir / fmt::format(".{}.XXXXXX", name)).string();
  const int fd = ::mkostemp(templ.data(), O_CLOEXEC);
  if (fd < 0) {
    return status{errc::storage,
                  dir.string() + ": cannot create a file for " + name + ": " + errno_text(errno)};
  }
  const fs::path temp = templ;
  const auto fail = [&](const char* what) {
    const int e = errno;
    ::close(fd);
    ::unlink(temp.c_str());
    return status{errc::storage, (dir / name).string() + ": cannot " + what + ": " + errno_text(e)};
  };
  if (::fchmod(fd, mode) != 0) return fail("set the file mode");
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("write");
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("sync");
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(temp.c_str());
    return status{errc::storage, (dir / name).string() + ": cannot close: " + errno_text(e)};
  }
  return temp;
}

/// Moves `temp` to `target`: replacing it (rename) or never (link fails with
/// EEXIST). `temp` is gone afterwards in either case.
status install(const fs::path& temp, const fs::path& target, bool replace) {
  if (replace) {
    if (::rename(temp.c_str(), target.c_str()) == 0) return status::ok();
  } else if (::link(temp.c_str(), target.c_str()) == 0) {
    ::unlink(temp.c_str());
    return status::ok();
  }
  const int e = errno;
  ::unlink(temp.c_str());
  if (e == EEXIST) {
    return {errc::storage, target.string() + " already exists; pass --force to replace it"};
  }
  return {errc::storage, target.string() + ": cannot write: " + errno_text(e)};
}

status sync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return {errc::storage, dir.string() + ": cannot open: " + errno_text(errno)};
  const int rc = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  if (rc != 0) return {errc::storage, dir.string() + ": cannot sync: " + errno_text(e)};
  return status::ok();
}

/// Creates `dir` with mode 0700 unless it exists (parents with the default mode).
status make_key_dir(fs::path dir) {
  // "keys/" names the directory "keys", not an empty name inside it.
  while (!dir.has_filename() && dir.has_parent_path() && dir.parent_path() != dir) {
    dir = dir.parent_path();
  }
  std::error_code ec;
  const auto st = fs::status(dir, ec);
  if (fs::exists(st)) {
    if (!fs::is_directory(st)) {
      return {errc::storage, dir.string() + ": exists and is not a directory"};
    }
    return status::ok();
  }
  if (dir.has_parent_path()) {
    fs::create_directories(dir.parent_path(), ec);
    if (ec) {
      return {errc::storage,
              dir.parent_path().string() + ": cannot create directory: " + ec.message()};
    }
  }
  if (::mkdir(dir.c_str(), 0700) != 0) {
    const int e = errno;
    if (e == EEXIST && fs::is_directory(dir, ec)) return status::ok();  // created meanwhile
    if (e == EEXIST) return {errc::storage, dir.string() + ": exists and is not a directory"};
    return {errc::storage, dir.string() + ": cannot create directory: " + errno_text(e)};
  }
  // The umask may have removed owner bits; the key directory is exactly 0700.
  if (::chmod(dir.c_str(), 0700) != 0) {
    return {errc::storage, dir.string() + ": cannot set mode 0700: " + errno_text(errno)};
  }
  return status::ok();
}

bool path_exists(const fs::path& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;  // a dangling symlink counts as existing
}

}  // namespace

keypair::~keypair() {
  wipe(secret_key.data(), secret_key.size());
}

status curve_available() {
  if (zmq_has("curve") != 0) return status::ok();
  int major = 0, minor = 0, patch = 0;
  zmq_version(&major, &minor, &patch);
  return {errc::transport, "libzmq " + std::to_string(major) + "." + std::to_string(minor) + "." +
                               std::to_string(patch) +
                               " was built without CURVE support (zmq_has(\"curve\") is false); "
                               "install a libzmq built with libsodium (Debian: libzmq5)"};
}

std::string to_z85(const curve_key& key) {
  char text[key_z85_chars + 1];
  zmq_z85_encode(text, key.data(), key.size());
  std::string out(text, key_z85_chars);
  wipe(text, sizeof text);
  return out;
}

result<curve_key> from_z85(std::string_view text) {
  if (text.size() != key_z85_chars) {
    return status{errc::invalid_argument, "a key is " + std::to_string(key_z85_chars) +
                                              " Z85 characters, got " +
                                              std::to_string(text.size())};
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (z85_alphabet.find(text[i]) == std::string_view::npos) {
      const auto c = static_cast<unsigned char>(text[i]);
      std::string shown =
          c >= 0x21 && c < 0x7f ? std::string("'") + text[i] + "'" : "byte " + std::to_string(c);
      return status{errc::invalid_argument,
                    "character " + std::to_string(i + 1) + " (" + shown + ") is not Z85"};
    }
  }
  char z[key_z85_chars + 1];
  std::memcpy(z, text.data(), key_z85_chars);
  z[key_z85_chars] = '\0';
  curve_key key{};
  const bool ok = zmq_z85_decode(key.data(), z) != nullptr;
  wipe(z, sizeof z);
  if (!ok) {
    wipe(key.data(), key.size());
    return status{errc::invalid_argument,
                  "not a valid Z85 key: a group of 5 characters encodes more than 32 bits"};
  }
  return key;
}

result<curve_key> public_key_of(const curve_key& secret) {
  if (auto st = curve_available(); !st) return st;
  char secret_text_z85[key_z85_chars + 1];
  char public_text[key_z85_chars + 1];
  zmq_z85_encode(secret_text_z85, secret.data(), secret.size());
  const int rc = zmq_curve_public(public_text, secret_text_z85);
  const int e = errno;
  wipe(secret_text_z85, sizeof secret_text_z85);
  if (rc != 0) return status{errc::transport, "zmq_curve_public: " + errno_text(e)};
  return from_z85(std::string_view(public_text, key_z85_chars));
}

result<keypair> generate() {
  if (auto st = curve_available(); !st) return st;
  char public_text[key_z85_chars + 1];
  char secret_z85[key_z85_chars + 1];
  if (zmq_curve_keypair(public_text, secret_z85) != 0) {
    const int e = errno;
    wipe(secret_z85, sizeof secret_z85);
    return status{errc::transport, "zmq_curve_keypair: " + errno_text(e)};
  }
  keypair kp;
  auto pub = from_z85(std::string_view(public_text, key_z85_chars));
  auto sec = from_z85(std::string_view(secret_z85, key_z85_chars));
  wipe(secret_z85, sizeof secret_z85);
  if (!pub || !sec) return status{errc::internal, "zmq_curve_keypair returned a malformed key"};
  kp.public_key = *pub;
  kp.secret_key = *sec;
  wipe(sec->data(), sec->size());
  return kp;
}

result<keypair> load_secret_key(const fs::path& path) {
  if (auto st = curve_available(); !st) return st;
  secret_text content;
  if (auto st = read_key_file(path, /*secret=*/true, content.s); !st) return st;
  auto secret = parse_secret_key_file(path, content.s);
  if (!secret) return secret.error();
  keypair kp;
  kp.secret_key = *secret;
  wipe(secret->data(), secret->size());
  auto pub = public_key_of(kp.secret_key);
  if (!pub) return pub.error();
  kp.public_key = *pub;
  return kp;
}

result<curve_key> parse_public_key(std::string_view text) {
  return from_z85(trim(text));
}

result<curve_key> load_public_key(const fs::path& path) {
  secret_text content;  // in case someone hands us a node.key
  if (auto st = read_key_file(path, /*secret=*/false, content.s); !st) return st;
  if (looks_like_secret_key_file(content.s)) {
    return status{errc::bad_config,
                  path.string() +
                      ": is a secret key file (node.key), not a public key; a partner gets "
                      "node.pub, never node.key"};
  }
  auto key = parse_public_key(content.s);
  if (!key) {
    return status{errc::bad_config,
                  path.string() + ": not a public key file (node.pub): " + key.error().message()};
  }
  return key;
}

result<curve_key> public_key_from_file(const fs::path& path) {
  secret_text content;
  // Read without the mode check only to tell the kinds apart; a secret key
  // is then loaded (and checked) through load_secret_key.
  if (auto st = read_key_file(path, /*secret=*/false, content.s); !st) return st;
  if (!looks_like_secret_key_file(content.s)) return load_public_key(path);
  auto kp = load_secret_key(path);
  if (!kp) return kp.error();
  return kp->public_key;
}

result<curve_key> write_keypair(const fs::path& dir, bool force) {
  auto kp = generate();
  if (!kp) return kp.error();
  const fs::path key_path = dir / secret_key_file_name;
  const fs::path pub_path = dir / public_key_file_name;
  if (auto st = make_key_dir(dir); !st) return st;
  if (!force) {
    for (const auto& p : {key_path, pub_path}) {
      if (path_exists(p)) {
        return status{errc::storage,
                      p.string() +
                          " already exists; pass --force to replace this node's keys (partners "
                          "then need the new node.pub)"};
      }
    }
  }

  const std::string pub_text = to_z85(kp->public_key) + "\n";
  secret_text key_text;
  key_text.s = std::string(secret_begin) + "\n" + to_z85(kp->secret_key) + "\n" +
               std::string(secret_end) + "\n";

  auto key_temp = write_temp(dir, secret_key_file_name, key_text.s, 0600);
  if (!key_temp) return key_temp.error();
  auto pub_temp = write_temp(dir, public_key_file_name, pub_text, 0644);
  if (!pub_temp) {
    ::unlink(key_temp->c_str());
    return pub_temp.error();
  }
  if (auto st = install(*key_temp, key_path, force); !st) {
    ::unlink(pub_temp->c_str());
    return st;
  }
  if (auto st = install(*pub_temp, pub_path, force); !st) {
    return status{errc::storage, st.message() + "; " + key_path.string() +
                                     " was written: recreate node.pub with `gearmesh keys show "
                                     "--key " +
                                     key_path.string() + " > " + pub_path.string() + "`"};
  }
  if (auto st = sync_dir(dir); !st) return st;
  return kp->public_key;
}

}  // namespace gearmesh::keys
