/* SPDX-License-Identifier: MIT
 *
 * onnx/ops/op.h -- the contract every ONNX operator implements, and the
 * helpers operators share (attributes, broadcasting, shapes). See README.md
 * in this folder for the step-by-step recipe.
 *
 * Life of a node:
 *   load   check(node)              attributes and arity; no shapes yet (optional)
 *   plan   infer_shape(exec)        input dtypes/shapes known, constant inputs
 *                                   have data; sets output dtype/shape, scratch
 *                                   size, kernel dtype and private parameters
 *   run    kernels[kdtype](exec)    data pointers bound; no allocation, no I/O,
 *                                   no locks, no globals
 * A plan exists per input-shape set (the batch dimension may change), so
 * infer_shape runs again when shapes change. When every input of a node is
 * known at plan time (initializers, folded constants), or the op is marked
 * QV_OP_SHAPE_ONLY, the planner runs the kernel once at plan time and the
 * node costs nothing at run time (constant folding).
 */
#ifndef QV_ONNX_OP_H
#define QV_ONNX_OP_H

#include "../../tensor/tensor.h"

#include <math.h>
#include <string.h>

struct qv_op;

enum qv_attr_type {
    QV_ATTR_UNDEF = 0,
    QV_ATTR_FLOAT,
    QV_ATTR_INT,
    QV_ATTR_STRING,
    QV_ATTR_TENSOR,
    QV_ATTR_FLOATS,
    QV_ATTR_INTS,
    QV_ATTR_STRINGS,
    QV_ATTR_OTHER, /* graphs, sparse tensors, type protos: not supported by any op */
};

/* One node attribute, converted from AttributeProto at load. Owned by the
 * model; immutable. */
struct qv_attr {
    const char *name;
    enum qv_attr_type type;
    float f;
    int64_t i;
    const char *s; /* NUL-terminated copy of the bytes */
    size_t s_len;
    int n; /* element count of ints / floats / strings */
    const int64_t *ints;
    const float *floats;
    const char *const *strings;
    const struct qv_tensor *t; /* QV_ATTR_TENSOR: data owned by the model */
};

/* One graph node. Immutable after load. */
struct qv_node {
    const char *name; /* the node's name, or "<op_type>_<index>" if it had none */
    const char *op_type;
    const struct qv_op *op;
    int index;           /* position in the file */
    int opset;           /* default-domain opset version of the model */
    int n_in, n_out;     /* including absent optional ones */
    const int *in, *out; /* value ids; -1 for an absent optional input/output */
    int n_attr;
    const struct qv_attr *attrs;
};

#define QV_EXEC_PRIV 512
#define QV_VALUE_INPUT_MAX 64 /* see qv__onnx_is_value_input */

/* One node inside one plan. The planner fills node, n_in/n_out, in/out (a
 * NULL entry for an absent optional input or output) and kdtype (dtype of the
 * first present input, or UNDEF); infer_shape fills the rest. At plan time
 * in[i]->data is non-NULL only when the value is known then (initializer or
 * folded constant); at run time every present tensor has data, inputs must
 * not be written and outputs are pre-sized (nbytes set by the planner). */
struct qv_exec {
    const struct qv_node *node;
    int n_in, n_out;
    const struct qv_tensor *const *in;
    struct qv_tensor *const *out;
    enum qv_dtype kdtype;  /* selects kernels[kdtype]; infer_shape may change it */
    size_t scratch_bytes;  /* set by infer_shape; the planner provides 'scratch' */
    void *scratch;         /* 64-byte aligned, valid during the kernel only */
    int threads;           /* threads the kernel may use (BLAS is set by the runtime) */
    struct qv_tpool *pool; /* the context's intra-op pool at run time; NULL: one thread */
    bool needs_values;     /* set by qv_input_known(): an input must be known at plan time */
    bool plain_conv;       /* the model's options ask for im2col + OpenBLAS convolutions */
    size_t prep_bytes;     /* set by infer_shape: data derived once from constant inputs */
    void *prep;            /* the planner's buffer of prep_bytes (64-byte aligned), which
                              the op's prepare() fills; owned by the plan, read-only at run */
    _Alignas(16) unsigned char priv[QV_EXEC_PRIV]; /* op-private parameters from infer_shape */
};

typedef int (*qv_kernel_fn)(struct qv_exec *x); /* no allocation, no I/O, no locks */

/* ---- Intra-op threads (pool.c) ----
 * qv_parallel_for(x, items, grain, fn, arg) calls fn(arg, begin, end, chunk)
 * over contiguous chunks covering [0, items), at most one per thread of
 * x->pool and each at least 'grain' items (fewer chunks when items are few),
 * and returns when all are done. Without a pool (plan-time folding, one
 * thread) it is one call fn(arg, 0, items, 0). Chunk bounds depend only on
 * items, grain and the pool's size; 'chunk' (< qv_parallel_chunks()) indexes
 * per-chunk scratch. fn must not call qv_parallel_for itself. */
#define QV_TPOOL_MAX 64
struct qv_tpool;
typedef void (*qv_range_fn)(void *arg, int64_t begin, int64_t end, int chunk);
void qv_parallel_for(const struct qv_exec *x, int64_t items, int64_t grain, qv_range_fn fn,
                     void *arg);
int qv_parallel_chunks(const struct qv_exec *x, int64_t items, int64_t grain);
/* qv_parallel_tasks(x, tasks, fn, arg) calls fn(arg, begin, end, worker) on
 * runs of tasks covering [0, tasks), usually one task each: each thread
 * runs its share in order, then takes tasks from the end of the others'
 * shares (uneven tasks, or a thread the machine slows, balance themselves),
 * and returns when all are done.
 * 'worker' (< the pool's threads, 0 without a pool) names the calling
 * thread, for per-thread scratch; which thread runs which task is decided
 * at run time, so a task must compute the same whatever thread runs it. */
void qv_parallel_tasks(const struct qv_exec *x, int64_t tasks, qv_range_fn fn, void *arg);
/* qv_parallel_dyn(x, items, grain, fn, arg) calls fn(arg, begin, end, worker)
 * over contiguous chunks covering [0, items), each at least 'grain' items,
 * of even sizes, up to QV_DYN_CHUNKS per thread. Each thread runs its own
 * run of chunks in order, then takes chunks from the end of other threads'
 * runs: on a machine where one core is slowed (another process, a host
 * that shares it), the others take over its work instead of waiting for
 * it. 'worker' is as for qv_parallel_tasks. */
#define QV_DYN_CHUNKS 4
void qv_parallel_dyn(const struct qv_exec *x, int64_t items, int64_t grain, qv_range_fn fn,
                     void *arg);
/* Items (elements) below which an element-wise kernel stays on one thread. */
#define QV_PAR_GRAIN 16384

enum {
    QV_OP_SHAPE_ONLY = 1u << 0,  /* kernel reads only input shapes: fold it at plan time */
    QV_OP_NO_FOLD = 1u << 1,     /* never fold (random, stateful) */
    QV_OP_ELEMENTWISE = 1u << 2, /* output element i reads only element i of each input of the
                                    output's shape (or a one-element input): the runtime may
                                    run the kernel on slices of a large tensor in parallel */
};

struct qv_op {
    const char *name;                                         /* ONNX op_type */
    int since_version;                                        /* lowest opset implemented */
    unsigned flags;                                           /* QV_OP_* */
    int (*check)(const struct qv_node *n, struct qv_diag *d); /* (optional) load time */
    int (*infer_shape)(struct qv_exec *x, struct qv_diag *d); /* plan time */
    void (*prepare)(struct qv_exec *x);   /* (optional) plan time, after infer_shape asked for
                                             prep_bytes: fills x->prep from constant inputs */
    qv_kernel_fn kernels[QV_DTYPE_COUNT]; /* run time */
};

/* The operator table (op_table.c). */
const struct qv_op *qv_op_find(const char *op_type); /* NULL if unknown */
size_t qv_op_count(void);
const struct qv_op *qv_op_at(size_t i); /* in sorted order */

/* Designated initializers for kernel tables. */
#define QV_KERNELS_FLOAT(fn) [QV_DTYPE_F32] = fn
#define QV_KERNELS_ALL(fn)                                                                         \
    [QV_DTYPE_F32] = fn, [QV_DTYPE_U8] = fn, [QV_DTYPE_I8] = fn, [QV_DTYPE_U16] = fn,              \
    [QV_DTYPE_I16] = fn, [QV_DTYPE_I32] = fn, [QV_DTYPE_I64] = fn, [QV_DTYPE_BOOL] = fn,           \
    [QV_DTYPE_F16] = fn, [QV_DTYPE_F64] = fn, [QV_DTYPE_U32] = fn, [QV_DTYPE_U64] = fn

/* ---- Attributes (op_util.c) ----
 * Lookups return the default / NULL when the attribute is absent. A present
 * attribute of the wrong type counts as absent; check() should reject it
 * with qv_op_attr_expect(). */
const struct qv_attr *qv_attr_find(const struct qv_node *n, const char *name);
int64_t qv_attr_int(const struct qv_node *n, const char *name, int64_t dflt);
float qv_attr_float(const struct qv_node *n, const char *name, float dflt);
const char *qv_attr_string(const struct qv_node *n, const char *name, const char *dflt);
/* ints/floats list: returns the array and sets *count; NULL and 0 if absent. */
const int64_t *qv_attr_ints(const struct qv_node *n, const char *name, int *count);
const float *qv_attr_floats(const struct qv_node *n, const char *name, int *count);
const struct qv_tensor *qv_attr_tensor(const struct qv_node *n, const char *name);
/* Fails with QV_EINVAL if attribute 'name' is present with another type. */
int qv_op_attr_expect(const struct qv_node *n, const char *name, enum qv_attr_type type,
                      struct qv_diag *d);

/* ---- Diagnostics ----
 * qv_op_fail(x->node, d, QV_ENOTSUP, "dtype %s", ...) writes
 * "node 'name' (Op): dtype ..." into d and returns the code. */
int qv_op_fail(const struct qv_node *n, struct qv_diag *d, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- Shapes (op_util.c) ---- */
/* Checks arity: n_in present inputs within [min_in,max_in] (absent optional
 * inputs count as present for positions), outputs within [min_out,max_out]. */
int qv_op_arity(const struct qv_exec *x, int min_in, int max_in, int min_out, int max_out,
                struct qv_diag *d);
/* Requires input i to be present with one of the listed dtypes (UNDEF-terminated). */
int qv_op_input_dtype(const struct qv_exec *x, int i, const enum qv_dtype *allowed,
                      struct qv_diag *d);
/* Sets out[0] to in[0]'s dtype and shape: the infer_shape of most unary ops. */
int qv_shape_same_as_input0(struct qv_exec *x, struct qv_diag *d);
/* Sets out tensor o's dtype/shape; a no-op for an absent or missing output. */
void qv_out_set(struct qv_exec *x, int o, enum qv_dtype dtype, int ndim, const int64_t *shape);
/* Normalizes a possibly negative axis against rank; QV_EINVAL if out of range. */
int qv_axis_norm(const struct qv_exec *x, int64_t axis, int rank, int *out, struct qv_diag *d);
/* QV_OK if input i is present and known at plan time. Otherwise QV_ENOTSUP
 * with a message, and x->needs_values is set: the runtime then plans the
 * model again for each run's input values (see docs/onnx.md). Use it for
 * every input whose values decide an output shape. */
int qv_input_known(struct qv_exec *x, int i, struct qv_diag *d);
/* Reads a constant int64 (or int32) 1-D input as int64 values; *count set.
 * Fails like qv_input_known() if the input is not known at plan time. */
int qv_input_ints(struct qv_exec *x, int i, int64_t *vals, int max, int *count, struct qv_diag *d);

/* ---- Broadcasting (op_util.c) ----
 * Multidirectional (numpy) broadcasting of up to 4 operands into out. */
#define QV_BCAST_MAX 4
struct qv_bcast {
    int ndim;                                   /* rank of the output */
    int64_t shape[QV_MAX_DIMS];                 /* output shape */
    int64_t strides[QV_BCAST_MAX][QV_MAX_DIMS]; /* element strides, 0 on broadcast dims */
    int n;                                      /* operand count */
    bool same[QV_BCAST_MAX];                    /* operand has exactly the output shape */
    int64_t numel;
};
/* Computes the broadcast shape of ops[0..n); QV_EINVAL (diag naming node 'nd'
 * and both shapes, d may be NULL) if incompatible. */
int qv_bcast_init(struct qv_bcast *b, int n, const struct qv_tensor *const *ops,
                  const struct qv_node *nd, struct qv_diag *d);
/* Element offsets of every operand for output element 'i' (slow path). */
void qv_bcast_offsets(const struct qv_bcast *b, int64_t i, int64_t *off);

/* ---- Integer matrix products (MatMulInteger, QLinearMatMul) ---- */
struct qv_int_matmul {
    int64_t m, n, k, batch;
    int64_t a_batch, b_batch; /* elements per batch; 0 for an operand shared across batches */
};
/* Checks int8/uint8 operands A and B of matching inner dims, fills p, the
 * double scratch both kernels use, and output 0 as out_dtype with A's shape
 * and B's columns. QV_ENOTSUP/QV_E2BIG with a diag naming the node. */
int qv_int_matmul_plan(struct qv_exec *x, const struct qv_tensor *A, const struct qv_tensor *B,
                       enum qv_dtype out_dtype, struct qv_int_matmul *p, struct qv_diag *d);

/* ---- Fusion (op_conv.c) ----
 * Makes a planned float Conv apply Relu (relu true) or Clip(lo, hi) to its
 * output, with the same NaN behaviour as those kernels. False if x is not a
 * float Conv or already has an activation. Plan time only. */
bool qv_conv_fuse_activation(struct qv_exec *x, bool relu, float lo, float hi);
/* Fusion of an Add into the Conv x that feeds it: x adds r (same shape and
 * type as its output, available when x runs) before its activation. False
 * if x is no float Conv without a fused activation or r does not fit. */
bool qv_conv_fuse_residual(struct qv_exec *x, const struct qv_tensor *r);

/* ---- Numbers ---- */
/* Limit on elements per tensor. qv_shape_fits() also bounds the product of
 * the dims with zeros counted as 1, so strides computed from any suffix of
 * dims never overflow even in an empty tensor. The loader and the planner
 * enforce it for every tensor, so kernels may multiply dims freely. */
#define QV_ONNX_MAX_ELEMS ((int64_t)1 << 40)
bool qv_shape_fits(const int64_t *shape, int ndim);

static inline int64_t qv_numel(const struct qv_tensor *t)
{
    return qv_shape_numel(t->shape, t->ndim);
}

#endif /* QV_ONNX_OP_H */
