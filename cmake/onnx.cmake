# SPDX-License-Identifier: MIT
# The ONNX runtime: C code for onnx.proto is generated at build time with
# protoc-c from the file Debian's libonnx-dev installs; nothing is copied.
pkg_check_modules(PROTOBUF_C REQUIRED IMPORTED_TARGET libprotobuf-c)
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
find_program(PROTOC_C protoc-c REQUIRED)
set(ONNX_PROTO /usr/include/onnx/onnx.proto)
set(QV_GEN_DIR ${CMAKE_BINARY_DIR}/gen)
file(MAKE_DIRECTORY ${QV_GEN_DIR}/onnx)
add_custom_command(
  OUTPUT ${QV_GEN_DIR}/onnx/onnx.pb-c.c ${QV_GEN_DIR}/onnx/onnx.pb-c.h
  COMMAND ${PROTOC_C} --proto_path=/usr/include --c_out=${QV_GEN_DIR} ${ONNX_PROTO}
  DEPENDS ${ONNX_PROTO}
  COMMENT "protoc-c onnx.proto")
set_source_files_properties(${QV_GEN_DIR}/onnx/onnx.pb-c.c PROPERTIES COMPILE_OPTIONS
  "-Wno-pedantic;-Wno-shadow;-Wno-strict-prototypes")
list(APPEND QV_EXTRA_SOURCES ${QV_GEN_DIR}/onnx/onnx.pb-c.c)
list(APPEND QV_EXTRA_INCLUDES ${QV_GEN_DIR})
list(APPEND QV_EXTRA_LIBS PkgConfig::PROTOBUF_C PkgConfig::OPENBLAS)
# The kernels' plain loops (im2col, epilogues, pooling, element-wise ops) are
# written for the vectorizer. At -O2 GCC vectorizes only loops that need no
# run-time check (its "very cheap" cost model); these need them (trip counts,
# aliasing), so the ONNX sources use the cost model of -O3. Vectorizing does
# not reorder floating-point sums (no -ffast-math): results keep their bits.
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
  file(GLOB QV_ONNX_KERNEL_SOURCES ${CMAKE_SOURCE_DIR}/src/onnx/ops/*.c)
  set_source_files_properties(${QV_ONNX_KERNEL_SOURCES} PROPERTIES COMPILE_OPTIONS
    "-fvect-cost-model=dynamic")
endif()
