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
