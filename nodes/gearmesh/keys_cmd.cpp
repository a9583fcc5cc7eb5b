// `gearmesh keys`: thin printing around gearmesh::keys.
#include "keys_cmd.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <ostream>

#include "cli.hpp"
#include "gearmesh/keys/keys.hpp"

namespace gearmesh::cli {

namespace {

int fail(std::ostream& err, const status& st) {
  err << "gearmesh: " << st.message() << '\n';
  return exit_api_error;
}

}  // namespace

int keys_generate_command(const std::string& dir, bool force, bool raw_json, std::ostream& out,
                          std::ostream& err) {
  auto pub = keys::write_keypair(dir, force);
  if (!pub) return fail(err, pub.error());
  const std::filesystem::path d(dir);
  const auto key_file = (d / keys::secret_key_file_name).string();
  const auto pub_file = (d / keys::public_key_file_name).string();
  if (raw_json) {
    out << nlohmann::json{{"public_key", keys::to_z85(*pub)},
                          {"secret_key_file", key_file},
                          {"public_key_file", pub_file}}
               .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
        << '\n';
  } else {
    out << keys::to_z85(*pub) << '\n';
    err << "wrote " << key_file << " (secret, mode 0600, keep it on this node) and " << pub_file
        << " (public, give it to partners)\n";
  }
  return exit_ok;
}

int keys_show_command(const std::string& file, bool raw_json, std::ostream& out,
                      std::ostream& err) {
  auto pub = keys::public_key_from_file(file);
  if (!pub) return fail(err, pub.error());
  if (raw_json) {
    out << nlohmann::json{{"public_key", keys::to_z85(*pub)}}.dump(2) << '\n';
  } else {
    out << keys::to_z85(*pub) << '\n';
  }
  return exit_ok;
}

}  // namespace gearmesh::cli
