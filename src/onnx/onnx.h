/* SPDX-License-Identifier: MIT
 *
 * onnx/onnx.h -- quiver's own ONNX runtime: load a model file, describe its
 * inputs and outputs, run it on a batch. This header is the module's whole
 * public face; the graph, the planner and the operators are private to the
 * folder (onnx_int.h, ops/op.h).
 *
 * A qv_onnx_model is immutable after load except for a pool of execution
 * contexts (plan + arena) guarded by a mutex inside the model. Each context
 * caches the plan for the input shapes it last ran; a call with new shapes
 * re-plans that context. qv_onnx_run() is re-entrant: concurrent callers get
 * different contexts, and executing a planned graph allocates nothing except
 * the output tensors handed to the caller.
 */
#ifndef QV_ONNX_H
#define QV_ONNX_H

#include "../tensor/tensor.h"

typedef struct qv_onnx_model qv_onnx_model; /* opaque; defined in onnx/model.c */

struct qv_onnx_options {
    int threads;      /* threads one run may use (>= 1; 0 means 1; at most 64): each
                         execution context starts threads - 1 intra-op threads */
    bool no_fusion;   /* plan every node as written (no Conv + Add/Relu/Clip fusion) */
    bool plain_conv;  /* convolutions by im2col + OpenBLAS only: no Winograd F(2x2, 3x3), no
                         weights packed at load */
    size_t max_bytes; /* largest model file or external data accepted; 0: 4 GiB */
    size_t max_run_bytes; /* working memory one run may plan (arena, folded data);
                             0: QV_ONNX_DEFAULT_RUN_BYTES. Past it a run fails with
                             QV_E2BIG naming an input, before allocating. */
};

#define QV_ONNX_DEFAULT_RUN_BYTES ((size_t)4 << 30)
#define QV_ONNX_PLAN_CACHE 4 /* plans (input shapes) each execution context keeps */

/* Loads and plans the model at 'path' (external data files are read from its
 * directory). On success *out owns the model; free it with qv_onnx_free().
 * On failure nothing leaks, *out is untouched and d names the node, the op
 * and the reason: QV_EINVAL for a corrupt or inconsistent file, QV_ENOTSUP
 * for an operator, type or opset the runtime lacks, QV_ENOMEM/QV_E2BIG.
 * Worker thread. */
int qv_onnx_load_file(const char *path, const struct qv_onnx_options *opt, qv_onnx_model **out,
                      struct qv_diag *d);
/* The same from a buffer (borrowed for the call). External data is resolved
 * against base_dir; NULL refuses external data. Any thread. */
int qv_onnx_load_buffer(const void *data, size_t len, const char *base_dir,
                        const struct qv_onnx_options *opt, qv_onnx_model **out, struct qv_diag *d);
void qv_onnx_free(qv_onnx_model *m); /* NULL is a no-op. No run may be in flight. */
/* Plans cached by idle contexts, and plans built since load (tests, metrics). */
void qv_onnx_plan_stats(qv_onnx_model *m, int *cached, uint64_t *built);

/* Graph inputs (initializers excluded) and outputs, in graph order. Symbolic
 * or unknown dims are -1. Any thread. */
int qv_onnx_n_inputs(const qv_onnx_model *m);
int qv_onnx_n_outputs(const qv_onnx_model *m);
const struct qv_tensor_desc *qv_onnx_input(const qv_onnx_model *m,
                                           int i); /* NULL if out of range */
const struct qv_tensor_desc *qv_onnx_output(const qv_onnx_model *m,
                                            int i); /* NULL if out of range */
int qv_onnx_opset(const qv_onnx_model *m);          /* default-domain opset version */
/* Activation and Add nodes fused into their Conv in the plan made at load (tests). */
int qv_onnx_fused_nodes(const qv_onnx_model *m);
/* Nodes whose weights were transformed at plan time (Winograd convolutions)
 * in the plan made at load (tests). */
int qv_onnx_prepared_nodes(const qv_onnx_model *m);

/* Runs the model. in[0..n_in) are matched to the graph inputs by name when
 * every tensor has a name that is a graph input, else by position. On
 * success out[0..*n_out) are owned tensors in graph output order that the
 * caller must qv_tensor_fini(); max_out bounds the array. A wrong count,
 * dtype or shape is QV_EINVAL with a message; a failing kernel is
 * QV_EBACKEND. On failure no output is left allocated. Any thread,
 * concurrently with other runs on the same model. */
int qv_onnx_run(qv_onnx_model *m, const struct qv_tensor *in, int n_in, struct qv_tensor *out,
                int max_out, int *n_out, struct qv_diag *d);

/* Bytes held: weights plus every context's plan and arena. Any thread. */
size_t qv_onnx_memory(const qv_onnx_model *m);

/* Parses one serialized TensorProto (as in the ONNX test data's *.pb files)
 * into an owned tensor. QV_ENOTSUP for strings and types without a qv_dtype.
 * Any thread. */
int qv_onnx_tensor_parse(const void *data, size_t len, struct qv_tensor *out, struct qv_diag *d);

#endif /* QV_ONNX_H */
