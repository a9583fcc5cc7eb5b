// A node's CURVE identity on disk: key generation, key files, validation.
//
// Every node has one CurveZMQ keypair (Curve25519). The secret key never
// leaves the node; the public key is what partners put in their trust store
// (docs/security.md). A key directory holds two files:
//
//   node.key   the secret key, mode 0600, in this exact text form:
//                -----BEGIN GEARMESH CURVE SECRET KEY-----
//                <40 Z85 characters>
//                -----END GEARMESH CURVE SECRET KEY-----
//   node.pub   the public key: 40 Z85 characters and a newline, mode 0644.
//              The same text goes into a partner's `public_key = "..."`.
//
// The markers make a secret key file unmistakable: a secret key given where
// a public key belongs (or the reverse) is an error, never silently used.
// Z85 is ZeroMQ's text encoding of binary keys (RFC 32/Z85).
//
// Thread-safe: all functions are free functions without shared state. None
// throws. Errors carry a message naming the file and what to do.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "gearmesh/status.hpp"

namespace gearmesh::keys {

/// Bytes of a Curve25519 key.
constexpr std::size_t key_bytes = 32;
/// Characters of a key in Z85 (5 characters per 4 bytes).
constexpr std::size_t key_z85_chars = 40;
/// Key files are tiny; anything larger is not a key file and is not read.
constexpr std::size_t key_file_bytes_max = 4096;

/// File names inside a key directory.
constexpr const char* secret_key_file_name = "node.key";
constexpr const char* public_key_file_name = "node.pub";

/// A binary Curve25519 key, as ZMQ_CURVE_*KEY and the ZAP handler use it.
using curve_key = std::array<std::uint8_t, key_bytes>;

/// A node's keypair. The destructor wipes the secret key from memory.
struct keypair {
  curve_key public_key{};
  curve_key secret_key{};

  keypair() = default;
  keypair(const keypair&) = default;
  keypair& operator=(const keypair&) = default;
  ~keypair();
};

/// Ok if the linked libzmq supports CURVE (zmq_has("curve")); otherwise
/// errc::transport with a message saying so (libzmq built without libsodium).
status curve_available();

/// `key` as 40 Z85 characters.
std::string to_z85(const curve_key& key);

/// Decodes 40 Z85 characters (no surrounding whitespace).
/// Errors: errc::invalid_argument naming the wrong length or the first
/// character outside the Z85 alphabet.
result<curve_key> from_z85(std::string_view text);

/// The public key that belongs to `secret`. Errors: see curve_available.
result<curve_key> public_key_of(const curve_key& secret);

/// A fresh keypair from libzmq's CSPRNG (zmq_curve_keypair).
/// Errors: see curve_available.
result<keypair> generate();

/// Reads the secret key file at `path` (a node.key) and derives its public key.
///
/// Refuses, like ssh, a file that group or others may access (any of the mode
/// bits 077): the message names the file and its mode and says to
/// `chmod 600` it. Symbolic links are followed; the mode checked is the
/// target's. Errors: errc::not_found (no such file); errc::bad_config (not a
/// regular file, mode too open, too large, not in the node.key form, a bad
/// key, or a public key file given instead); errc::storage (cannot be read);
/// errc::transport (no CURVE support, see curve_available).
result<keypair> load_secret_key(const std::filesystem::path& path);

/// Parses a public key given as text, e.g. a trust store's `public_key`:
/// 40 Z85 characters, surrounding whitespace ignored.
/// Errors: errc::invalid_argument (see from_z85).
result<curve_key> parse_public_key(std::string_view text);

/// Reads a public key file (a node.pub: the Z85 key, optionally followed by
/// whitespace). Errors: errc::not_found; errc::bad_config (not a regular
/// file, too large, not a Z85 key, or a secret key file given instead);
/// errc::storage (cannot be read).
result<curve_key> load_public_key(const std::filesystem::path& path);

/// The public key of a key file of either kind: a node.pub's key, or the key
/// derived from a node.key (which must pass load_secret_key's checks).
/// Errors: those of load_secret_key and load_public_key.
result<curve_key> public_key_from_file(const std::filesystem::path& path);

/// Writes a fresh keypair to `dir`/node.key (mode 0600) and `dir`/node.pub
/// (mode 0644) and returns its public key.
///
/// `dir` is created with mode 0700 if it does not exist (missing parents with
/// the default mode); an existing `dir` is used as it is. Each file is
/// written to a new temporary file (O_CREAT|O_EXCL, created 0600 and set to
/// its final mode with fchmod, so the umask never widens it), synced, and
/// then moved into place: without `force` with link(2), which fails if the
/// name exists, so an existing key is never replaced; with `force` with
/// rename(2), atomically replacing the old file. The secret key is installed
/// before the public key, then the directory is synced.
///
/// Errors: errc::storage when either file already exists and `force` is
/// false (nothing is written), or on any I/O failure (temporary files are
/// removed); errc::transport (no CURVE support).
result<curve_key> write_keypair(const std::filesystem::path& dir, bool force);

}  // namespace gearmesh::keys
