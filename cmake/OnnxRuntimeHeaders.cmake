# Locates the ONNX Runtime C/C++ headers (the onnxruntime wheel ships none) and defines the
# INTERFACE target onnxruntime::headers. The plugin never links libonnxruntime: ORT hands the
# API table to RegisterCustomOps at load time, so only headers are needed.
#
# Search order:
#   1. ONNXRUNTIME_ROOT (cache variable or environment), or a system install;
#   2. the official release archive, when its host is reachable;
#   3. Debian's libonnxruntime-dev (trixie), fetched with apt-get into the build tree.
# The version is pinned: building against API 21 lets every runtime from 1.21 on load the plugin.
# ONNX_SPARSIFY_ORT_API is the one place that number lives: the C++ code (GetApi, build_info)
# receives it as a compile definition through onnxruntime::headers.

set(ONNX_SPARSIFY_ORT_API 21)
set(ORT_HEADERS_VERSION "1.${ONNX_SPARSIFY_ORT_API}.0")
set(ORT_HEADERS_DEBIAN_SUITE "trixie")

set(ONNXRUNTIME_ROOT "$ENV{ONNXRUNTIME_ROOT}" CACHE PATH "Folder holding ONNX Runtime's include/ (optional)")
set(ORT_HEADERS_DOWNLOAD_DIR "${CMAKE_BINARY_DIR}/_deps/onnxruntime-headers")

function(_ort_try_dir dir out_var)
  foreach(sub "include/onnxruntime" "include" "include/onnxruntime/core/session")
    if(EXISTS "${dir}/${sub}/onnxruntime_c_api.h")
      set(${out_var} "${dir}/${sub}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
endfunction()

include("${CMAKE_CURRENT_LIST_DIR}/FetchHeaders.cmake")

set(ORT_INCLUDE_DIR "")
if(ONNXRUNTIME_ROOT)
  _ort_try_dir("${ONNXRUNTIME_ROOT}" ORT_INCLUDE_DIR)
  if(NOT ORT_INCLUDE_DIR)
    message(FATAL_ERROR "ONNXRUNTIME_ROOT=${ONNXRUNTIME_ROOT} holds no include/onnxruntime_c_api.h")
  endif()
endif()
if(NOT ORT_INCLUDE_DIR)
  find_path(ORT_SYSTEM_INCLUDE onnxruntime_c_api.h PATH_SUFFIXES onnxruntime onnxruntime/core/session)
  if(ORT_SYSTEM_INCLUDE)
    set(ORT_INCLUDE_DIR "${ORT_SYSTEM_INCLUDE}")
  endif()
endif()
if(NOT ORT_INCLUDE_DIR)
  _ort_try_dir("${ORT_HEADERS_DOWNLOAD_DIR}/onnxruntime-linux-x64-${ORT_HEADERS_VERSION}" ORT_INCLUDE_DIR)
endif()
if(NOT ORT_INCLUDE_DIR)
  _ort_try_dir("${ORT_HEADERS_DOWNLOAD_DIR}/debian/root/usr" ORT_INCLUDE_DIR)
endif()
if(NOT ORT_INCLUDE_DIR AND NOT ORT_HEADERS_SKIP_RELEASE_ARCHIVE)
  set(_ort_name "onnxruntime-linux-x64-${ORT_HEADERS_VERSION}")
  fetch_archive("https://github.com/microsoft/onnxruntime/releases/download/v${ORT_HEADERS_VERSION}/${_ort_name}.tgz"
                "${ORT_HEADERS_DOWNLOAD_DIR}/${_ort_name}.tgz" "${ORT_HEADERS_DOWNLOAD_DIR}")
  _ort_try_dir("${ORT_HEADERS_DOWNLOAD_DIR}/${_ort_name}" ORT_INCLUDE_DIR)
endif()
if(NOT ORT_INCLUDE_DIR)
  fetch_debian_package("${ORT_HEADERS_DOWNLOAD_DIR}/debian" "${ORT_HEADERS_DEBIAN_SUITE}" libonnxruntime-dev
                       "${ORT_HEADERS_VERSION}")
  _ort_try_dir("${ORT_HEADERS_DOWNLOAD_DIR}/debian/root/usr" ORT_INCLUDE_DIR)
endif()
if(NOT ORT_INCLUDE_DIR)
  message(FATAL_ERROR
    "ONNX Runtime headers not found. Set ONNXRUNTIME_ROOT to a folder with include/onnxruntime_c_api.h "
    "(for example an extracted onnxruntime-linux-x64-${ORT_HEADERS_VERSION}.tgz).")
endif()

file(STRINGS "${ORT_INCLUDE_DIR}/onnxruntime_c_api.h" _ort_api_line REGEX "^#define ORT_API_VERSION [0-9]+")
string(REGEX REPLACE ".* ([0-9]+)$" "\\1" ORT_HEADERS_API_VERSION "${_ort_api_line}")
if(ORT_HEADERS_API_VERSION LESS ONNX_SPARSIFY_ORT_API)
  message(FATAL_ERROR "ONNX Runtime headers in ${ORT_INCLUDE_DIR} are API ${ORT_HEADERS_API_VERSION}; "
                      "need ${ONNX_SPARSIFY_ORT_API} or later")
endif()
message(STATUS "ONNX Runtime headers: ${ORT_INCLUDE_DIR} (API ${ORT_HEADERS_API_VERSION}; "
               "built against API ${ONNX_SPARSIFY_ORT_API})")

add_library(onnxruntime_headers INTERFACE)
target_include_directories(onnxruntime_headers SYSTEM INTERFACE "${ORT_INCLUDE_DIR}")
# Build against that API whatever header version was found, so every runtime from it on loads the plugin.
target_compile_definitions(onnxruntime_headers INTERFACE ORT_API_MANUAL_INIT
                                                         ONNX_SPARSIFY_ORT_API=${ONNX_SPARSIFY_ORT_API})
add_library(onnxruntime::headers ALIAS onnxruntime_headers)
