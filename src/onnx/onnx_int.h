/* SPDX-License-Identifier: MIT
 *
 * onnx/onnx_int.h -- private to src/onnx/: the loaded graph, the per-shape
 * plan and the execution contexts. Operators see only ops/op.h.
 *
 * Ownership: a qv__onnx_graph owns everything reachable from it (names,
 * attributes, initializer data) through its pool; it is immutable after
 * load. A qv__onnx_plan belongs to one context and owns its arena and folded
 * constants.
 */
#ifndef QV_ONNX_INT_H
#define QV_ONNX_INT_H

#include "onnx.h"
#include "ops/op.h"

/* A bump allocator for the graph: fallible, freed in one call. */
struct qv__pool_block;
struct qv__pool {
    struct qv__pool_block *head;
    size_t bytes; /* total allocated, for memory accounting */
};
void *qv__pool_alloc(struct qv__pool *p, size_t n); /* zeroed, 16-aligned; NULL on ENOMEM */
char *qv__pool_strdup(struct qv__pool *p, const char *s, size_t len);
void qv__pool_free(struct qv__pool *p);

enum qv__value_kind {
    QV__VALUE_NODE = 0, /* produced by a node */
    QV__VALUE_INPUT,    /* a graph input fed at run time */
    QV__VALUE_CONST,    /* an initializer */
};

struct qv__value {
    const char *name;
    enum qv__value_kind kind;
    bool is_output;               /* a graph output */
    int producer;                 /* node id, -1 if none */
    struct qv_tensor_desc desc;   /* declared dtype/shape (inputs, outputs); ndim -1: unknown */
    const struct qv_tensor *init; /* QV__VALUE_CONST: the data */
};

struct qv__onnx_graph {
    struct qv__pool pool;
    int opset;
    int n_values, n_nodes;
    struct qv__value *values;
    struct qv_node *nodes; /* in topological order */
    int n_inputs, n_outputs;
    int *inputs, *outputs; /* value ids */
    struct qv_tensor_desc *in_desc, *out_desc;
    size_t weight_bytes;
};

/* Deepest message nesting a model file may have (a subgraph costs three
 * levels: node, attribute, graph); checked before protobuf-c unpacks it. */
#define QV_ONNX_MAX_NESTING 64

/* Builds the graph from a serialized ModelProto (load.c). */
int qv__onnx_graph_load(const void *data, size_t len, const char *base_dir, size_t max_bytes,
                        struct qv__onnx_graph *g, struct qv_diag *d);
void qv__onnx_graph_fini(struct qv__onnx_graph *g);

/* One plan: everything a run needs for one set of input shapes. */
struct qv__onnx_plan {
    int64_t *key; /* ndim and dims of every input this plan is for */
    int key_len;
    int64_t *vkey; /* values of the small integer inputs bound at plan time */
    int vkey_len;
    struct qv_tensor *tensors; /* one per value */
    struct qv_exec *execs;     /* one per node */
    const struct qv_tensor **in_ptrs;
    struct qv_tensor **out_ptrs;
    qv_kernel_fn *kernels; /* per node; NULL for nodes folded at plan time */
    bool *split;           /* per node: an element-wise kernel run on slices in parallel */
    void *arena;
    size_t arena_bytes;
    void **folded; /* data blocks of folded values */
    int n_folded;
    size_t folded_bytes;
    int n_fused; /* activation and Add nodes folded into their Conv */
    int n_prepared; /* nodes with data derived from constant inputs (Winograd weights) */
};

/* Which graph inputs' values a plan may read (they are then constants to
 * the planner, and the plan is valid only for those values). */
enum qv__bind {
    QV__BIND_NONE,  /* shapes only: the plan serves any values */
    QV__BIND_SMALL, /* small int/float vectors (qv__onnx_is_value_input), keyed by vkey */
    QV__BIND_ALL,   /* every input (data-dependent shapes): valid for this run only */
};

/* Plans g for the graph inputs in 'shapes' (tensors in graph input order;
 * dtype/ndim/shape are read, and data as 'bind' says). On failure p is left
 * finalized, and *needs_values (if not NULL) tells whether the failure was
 * an input that must be known at plan time (qv_input_known). A plan whose
 * arena and folded constants would pass max_bytes (0: no limit) is refused
 * with QV_E2BIG naming the largest input, before anything that size is
 * allocated. With 'fuse', a Relu or Clip whose only input is a float Conv's
 * output used nowhere else is folded into that Conv (the Conv writes the
 * activation's output; the activation node is skipped). */
int qv__onnx_plan_build(const struct qv__onnx_graph *g, const struct qv_tensor *shapes,
                        enum qv__bind bind, int threads, unsigned flags, size_t max_bytes,
                        struct qv__onnx_plan *p, bool *needs_values, struct qv_diag *d);
/* flags of qv__onnx_plan_build */
#define QV__PLAN_FUSE 1u        /* Conv + Relu/Clip fusion */
#define QV__PLAN_PLAIN_CONV 2u /* convolutions by im2col + OpenBLAS only */
bool qv__onnx_is_value_input(const struct qv_tensor *t);
/* Element k of a value input's data, as a plan-cache key. */
int64_t qv__onnx_value_key(const struct qv_tensor *t, const void *data, int64_t k);
void qv__onnx_plan_fini(struct qv__onnx_plan *p);
/* Runs a built plan whose input tensors' data pointers are bound, with the
 * intra-op pool 'pool' (NULL: one thread). */
int qv__onnx_plan_run(const struct qv__onnx_graph *g, struct qv__onnx_plan *p,
                      struct qv_tpool *pool, struct qv_diag *d);

/* The intra-op pool (pool.c): 'threads' threads counting the caller, so
 * threads - 1 are started. NULL for threads < 2 or when no thread could be
 * started (runs then use one thread). Used by one run at a time. */
struct qv_tpool *qv__tpool_create(int threads);
void qv__tpool_free(struct qv_tpool *p); /* NULL is a no-op */
int qv__tpool_threads(const struct qv_tpool *p);

/* TensorProto bytes to an owned tensor (load.c). */
int qv__onnx_tensor_parse(const void *data, size_t len, struct qv_tensor *out, struct qv_diag *d);

#endif /* QV_ONNX_INT_H */
