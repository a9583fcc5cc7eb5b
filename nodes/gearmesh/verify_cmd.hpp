// `gearmesh verify DATA_DIR... [--now TIME] [--json]`: the offline invariant
// checker (actors/include/gearmesh/actors/verify.hpp) as a command.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace gearmesh::cli {

/// Checks the stores in `data_dirs` at `now_text` (empty = the wall clock;
/// microseconds since the epoch, or any form parse_time accepts) and prints
/// the report to `out` (people) or as JSON (`raw_json`); errors go to `err`.
/// Returns exit_ok when clean, exit_api_error on any violation, exit_usage for
/// a bad --now or bad inputs (a directory given twice, two stores of one
/// node), exit_unreachable when a store cannot be opened or read.
int verify_command(const std::vector<std::string>& data_dirs, const std::string& now_text,
                   bool raw_json, std::ostream& out, std::ostream& err);

}  // namespace gearmesh::cli
