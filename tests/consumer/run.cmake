# Builds and runs tests/consumer, a separate project, the two ways a user's project takes griffin: through
# find_package on a scratch install, and through add_subdirectory on the source tree.
function(build_and_run_consumer how build)
  file(REMOVE_RECURSE "${build}")
  execute_process(COMMAND "${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/consumer" -B "${build}" -DCMAKE_BUILD_TYPE=Release
                          ${ARGN} RESULT_VARIABLE r)
  if(r)
    message(FATAL_ERROR "configuring the consumer with ${how} failed")
  endif()
  execute_process(COMMAND "${CMAKE_COMMAND}" --build "${build}" RESULT_VARIABLE r)
  if(r)
    message(FATAL_ERROR "building the ${how} consumer failed")
  endif()
  execute_process(COMMAND "${build}/consumer" "${SOURCE_DIR}/models/kjv-griffin" RESULT_VARIABLE r)
  if(r)
    message(FATAL_ERROR "the ${how} consumer failed")
  endif()
endfunction()

set(prefix "${BINARY_DIR}/consumer-install")
file(REMOVE_RECURSE "${prefix}")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BINARY_DIR}" --prefix "${prefix}" RESULT_VARIABLE r OUTPUT_QUIET)
if(r)
  message(FATAL_ERROR "install failed")
endif()
build_and_run_consumer("find_package(griffin)" "${BINARY_DIR}/consumer-build" "-DCMAKE_PREFIX_PATH=${prefix}")
# griffin's own tests and examples stay off under add_subdirectory: it is not the top-level project.
build_and_run_consumer("add_subdirectory(griffin)" "${BINARY_DIR}/consumer-subdir-build" "-DGRIFFIN_SOURCE_DIR=${SOURCE_DIR}")
