// gearmesh: command-line client of a Gearmesh node's admin API.
#include <iostream>

#include "cli.hpp"

int main(int argc, char** argv) {
  return gearmesh::cli::run(argc, argv, std::cout, std::cerr);
}
