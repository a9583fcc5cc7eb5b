// `gearmesh keys generate|show`: a node's CURVE keypair on disk
// (runtime/include/gearmesh/keys/keys.hpp, docs/security.md).
#pragma once

#include <iosfwd>
#include <string>

namespace gearmesh::cli {

/// `gearmesh keys generate --out DIR [--force]`: writes DIR/node.key (mode
/// 0600) and DIR/node.pub and prints the public key to `out` (as
/// {"public_key","secret_key_file","public_key_file"} with `raw_json`); a note
/// on what was written goes to `err`. Returns exit_ok, or exit_api_error with
/// the reason on `err` (keys exist and `force` is false, I/O error, libzmq
/// without CURVE).
int keys_generate_command(const std::string& dir, bool force, bool raw_json, std::ostream& out,
                          std::ostream& err);

/// `gearmesh keys show --key FILE`: prints the public key of a node.key
/// (derived; the file must pass the mode check) or of a node.pub, in Z85, or
/// as {"public_key"} with `raw_json`. Returns exit_ok, or exit_api_error with
/// the reason on `err`.
int keys_show_command(const std::string& file, bool raw_json, std::ostream& out, std::ostream& err);

}  // namespace gearmesh::cli
