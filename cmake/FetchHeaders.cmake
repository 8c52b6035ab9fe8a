# Helpers for the header-only dependencies the build fetches when they are not installed
# (OnnxRuntimeHeaders.cmake, Xbyak.cmake).

# Downloads Debian's PACKAGE at VERSION from SUITE and unpacks it into DEST/root, with a private
# apt state (fetch_debian_package.sh); says why in a status line and leaves DEST/root empty when
# apt-get or the package cannot be had.
function(fetch_debian_package dest suite package version)
  find_program(APT_GET apt-get)
  find_program(DPKG_DEB dpkg-deb)
  if(NOT APT_GET OR NOT DPKG_DEB)
    message(STATUS "Debian ${package}: no apt-get here")
    return()
  endif()
  execute_process(
    COMMAND "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/fetch_debian_package.sh" "${dest}" "${suite}" "${package}" "${version}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(STATUS "Debian ${package} route failed: ${err}")
  endif()
endfunction()

# Downloads URL to ARCHIVE and extracts it into DEST; says why in a status line when the host is
# not reachable.
function(fetch_archive url archive dest)
  file(DOWNLOAD "${url}" "${archive}" STATUS st TIMEOUT 120 INACTIVITY_TIMEOUT 10)
  list(GET st 0 code)
  if(NOT code EQUAL 0)
    file(REMOVE "${archive}")
    message(STATUS "${url} not reachable (${st})")
    return()
  endif()
  file(ARCHIVE_EXTRACT INPUT "${archive}" DESTINATION "${dest}")
endfunction()
