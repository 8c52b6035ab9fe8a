# Locates Xbyak, the header-only x86 assembler the CPU kernel generates its per-layer code with
# (ort_plugin/kernels/jit_*.cc), and defines the INTERFACE target xbyak::xbyak. Only headers are
# needed: the generated code is made in memory at run time, so the wheel carries nothing of Xbyak.
#
# Search order (as for ONNX Runtime's headers, OnnxRuntimeHeaders.cmake):
#   1. an installed package (find_package: Debian's libxbyak-dev, or xbyak_DIR / CMAKE_PREFIX_PATH);
#   2. Debian's libxbyak-dev, fetched with apt-get into the build tree;
#   3. the pinned release tag from GitHub, where it is reachable.
# XBYAK_MIN_VERSION is the oldest release the generators are written against (Debian bookworm's).

set(XBYAK_MIN_VERSION 6.68)
set(XBYAK_DEBIAN_SUITE "bookworm")
set(XBYAK_DOWNLOAD_DIR "${CMAKE_BINARY_DIR}/_deps/xbyak")

function(_xbyak_target include_dir how)
  if(NOT EXISTS "${include_dir}/xbyak/xbyak.h")
    return()
  endif()
  add_library(xbyak_headers INTERFACE)
  target_include_directories(xbyak_headers SYSTEM INTERFACE "${include_dir}")
  add_library(xbyak::xbyak ALIAS xbyak_headers)
  message(STATUS "Xbyak: ${include_dir} (${how})")
endfunction()

include("${CMAKE_CURRENT_LIST_DIR}/FetchHeaders.cmake")

find_package(xbyak ${XBYAK_MIN_VERSION} CONFIG QUIET)
if(TARGET xbyak::xbyak)
  message(STATUS "Xbyak: installed package (${xbyak_DIR})")
else()
  set(_debian_include "${XBYAK_DOWNLOAD_DIR}/debian/root/usr/include")
  set(_github_include "${XBYAK_DOWNLOAD_DIR}/github/xbyak-${XBYAK_MIN_VERSION}")
  _xbyak_target("${_debian_include}" "Debian's libxbyak-dev, fetched")
  if(NOT TARGET xbyak::xbyak)
    _xbyak_target("${_github_include}" "release v${XBYAK_MIN_VERSION}, fetched")
  endif()
  if(NOT TARGET xbyak::xbyak)
    fetch_debian_package("${XBYAK_DOWNLOAD_DIR}/debian" "${XBYAK_DEBIAN_SUITE}" libxbyak-dev "${XBYAK_MIN_VERSION}")
    _xbyak_target("${_debian_include}" "Debian's libxbyak-dev, fetched")
  endif()
  if(NOT TARGET xbyak::xbyak AND NOT XBYAK_SKIP_GITHUB)
    fetch_archive("https://github.com/herumi/xbyak/archive/refs/tags/v${XBYAK_MIN_VERSION}.tar.gz"
                  "${XBYAK_DOWNLOAD_DIR}/xbyak-${XBYAK_MIN_VERSION}.tar.gz" "${XBYAK_DOWNLOAD_DIR}/github")
    _xbyak_target("${_github_include}" "release v${XBYAK_MIN_VERSION}, fetched")
  endif()
endif()
if(NOT TARGET xbyak::xbyak)
  message(FATAL_ERROR "Xbyak not found: install libxbyak-dev (Debian, Ubuntu) or point xbyak_DIR at an "
                      "installed Xbyak ${XBYAK_MIN_VERSION} or later.")
endif()
