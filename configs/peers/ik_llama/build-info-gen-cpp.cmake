# Written for veclut: the ik-llama-cpp-python sdist lacks ik_llama.cpp's generator of
# common/build-info.cpp, which common/CMakeLists.txt runs as
#   cmake -DCMAKE_C_COMPILER=... -P common/cmake/build-info-gen-cpp.cmake
# veclut adds this file to its working copy of the tree (python/veclut/peer.py). It fills the
# four symbols common.h declares (LLAMA_BUILD_NUMBER, LLAMA_COMMIT, LLAMA_COMPILER,
# LLAMA_BUILD_TARGET) through the tree's own template, common/build-info.cpp.in.
set(BUILD_NUMBER 0)
set(BUILD_COMMIT "ik-llama-cpp-python sdist")
set(BUILD_COMPILER "${CMAKE_C_COMPILER_ID} ${CMAKE_C_COMPILER_VERSION}")
set(BUILD_TARGET "unknown")
if(CMAKE_C_COMPILER)
    execute_process(COMMAND "${CMAKE_C_COMPILER}" -dumpmachine
                    OUTPUT_VARIABLE BUILD_TARGET OUTPUT_STRIP_TRAILING_WHITESPACE)
endif()
# configure_file leaves an unchanged output untouched, so nothing recompiles needlessly
configure_file("${CMAKE_CURRENT_LIST_DIR}/../build-info.cpp.in" "${CMAKE_CURRENT_LIST_DIR}/../build-info.cpp")
