# SPDX-License-Identifier: MIT
# The KServe v2 gRPC service: gRPC's C core (Debian's libgrpc-dev) and the
# messages protoc-c generates at build time from proto/grpc_predict_v2.proto.
pkg_check_modules(GRPC REQUIRED IMPORTED_TARGET grpc)
pkg_check_modules(PROTOBUF_C REQUIRED IMPORTED_TARGET libprotobuf-c)
find_program(PROTOC_C protoc-c REQUIRED)
set(QV_GRPC_PROTO ${CMAKE_SOURCE_DIR}/proto/grpc_predict_v2.proto)
set(QV_GRPC_GEN_DIR ${CMAKE_BINARY_DIR}/gen/grpc)
file(MAKE_DIRECTORY ${QV_GRPC_GEN_DIR})
add_custom_command(
  OUTPUT ${QV_GRPC_GEN_DIR}/grpc_predict_v2.pb-c.c ${QV_GRPC_GEN_DIR}/grpc_predict_v2.pb-c.h
  COMMAND ${PROTOC_C} --proto_path=${CMAKE_SOURCE_DIR}/proto --c_out=${QV_GRPC_GEN_DIR}
          ${QV_GRPC_PROTO}
  DEPENDS ${QV_GRPC_PROTO}
  COMMENT "protoc-c grpc_predict_v2.proto")
set_source_files_properties(${QV_GRPC_GEN_DIR}/grpc_predict_v2.pb-c.c PROPERTIES COMPILE_OPTIONS
  "-Wno-pedantic;-Wno-shadow;-Wno-strict-prototypes")
list(APPEND QV_EXTRA_SOURCES ${QV_GRPC_GEN_DIR}/grpc_predict_v2.pb-c.c)
list(APPEND QV_EXTRA_INCLUDES ${QV_GRPC_GEN_DIR})
list(APPEND QV_EXTRA_LIBS PkgConfig::GRPC PkgConfig::PROTOBUF_C)
