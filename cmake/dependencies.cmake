# All dependencies come from Debian 12 packages (see Makefile: DEB_PACKAGES).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
pkg_check_modules(ZMQ REQUIRED IMPORTED_TARGET libzmq)
pkg_check_modules(LMDB REQUIRED IMPORTED_TARGET lmdb)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
find_package(FlatBuffers REQUIRED CONFIG)
find_program(FLATC flatc REQUIRED)
find_package(tomlplusplus REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(GTest REQUIRED)
find_package(benchmark REQUIRED)

# CAF 0.17 (libcaf-dev) ships no CMake package: locate it by hand.
find_path(CAF_INCLUDE_DIR caf/all.hpp REQUIRED)
find_library(CAF_CORE_LIBRARY caf_core REQUIRED)
find_library(CAF_IO_LIBRARY caf_io REQUIRED)
add_library(caf::core UNKNOWN IMPORTED)
set_target_properties(caf::core PROPERTIES IMPORTED_LOCATION ${CAF_CORE_LIBRARY}
                                           INTERFACE_INCLUDE_DIRECTORIES ${CAF_INCLUDE_DIR})

# Header-only: cppzmq, asio/boost.beast, nlohmann-json, CLI11.
find_path(CPPZMQ_INCLUDE_DIR zmq.hpp REQUIRED)
find_path(BEAST_INCLUDE_DIR boost/beast.hpp REQUIRED)
find_path(NLOHMANN_INCLUDE_DIR nlohmann/json.hpp REQUIRED)
find_path(CLI11_INCLUDE_DIR CLI/CLI.hpp REQUIRED)

# jemalloc (libjemalloc-dev): the allocator of the programs (gearmesh-node,
# gearmesh, the benchmarks), linked through gearmesh_malloc. A node allocates
# and frees many small objects per message on several threads (frames, CAF
# messages, write batches); glibc's malloc cost ~20 % of a negotiation's CPU
# (bench/README.md). Sanitizer and fuzz builds keep the sanitizers' allocator.
add_library(gearmesh_malloc INTERFACE)
if(NOT GEARMESH_SANITIZE AND NOT GEARMESH_FUZZ)
  find_library(JEMALLOC_LIBRARY jemalloc REQUIRED)
  target_link_libraries(gearmesh_malloc INTERFACE ${JEMALLOC_LIBRARY})
endif()

# gearmesh_add_tests(NAME SOURCES... LIBS ...): a GoogleTest executable whose
# tests are registered with CTest one by one.
function(gearmesh_add_tests name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  if(NOT GEARMESH_BUILD_TESTS)
    return()
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gtest_main)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/support)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)
endfunction()
