/* SPDX-License-Identifier: MIT
 *
 * A compiled tree ensemble (see forest.h). Every tree is a flat array of
 * 12-byte nodes in breadth-first order, so that the children of a node are
 * adjacent (right = left + 1) and every child comes after its parent: a walk
 * always ends, in at most the tree's node count steps.
 *
 * A tree that is not much smaller than the complete binary tree of its depth
 * is also laid out complete (node k's children at 2k+1 and 2k+2, leaves in
 * their own array): a leaf above the bottom becomes a node whose two
 * subtrees both end in copies of that leaf, whichever way a row goes, so every
 * row takes exactly `depth` steps with no leaf test, and a block of rows
 * advances level by level, each row an independent chain.
 *
 * Rows are evaluated in blocks, each tree over the whole block before the
 * next tree, so that a tree's nodes stay in cache; each row's sum still adds
 * the trees in model order, as libxgboost does, so the float results are the
 * same.
 */
#include "forest.h"

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define FOREST_LEAF UINT32_MAX
#define FOREST_MAX_NODES (1u << 24)   /* per tree */
#define FOREST_MAX_FEATURES (1u << 30)
#define FOREST_BLOCK_ROWS 64          /* rows evaluated together */
#define FOREST_ACC 4096               /* per-block accumulators, on the stack */
#define FOREST_MAX_COMPLETE 16        /* deepest tree laid out complete */
#define FOREST_WALK (-1)              /* ftree.depth of a tree that is walked */

struct fnode {
    float value;    /* the threshold, or the leaf's value */
    uint32_t split; /* (feature << 1) | default_left, or FOREST_LEAF */
    uint32_t left;  /* index of the left child in the tree; right is left + 1 */
};

/* A node of a complete tree: the split; its children are implicit. */
struct cnode {
    float threshold; /* -inf where a leaf was copied down (either way is that leaf) */
    uint32_t split;  /* (feature << 1) | default_left */
};

struct ftree {
    uint32_t start, count; /* the tree's nodes in qv_forest.nodes */
    uint32_t group;        /* the output group the tree adds to */
    int depth;             /* levels of the complete layout, or FOREST_WALK */
    size_t cstart, lstart; /* its complete nodes and leaves in cnodes, cleaves */
};

enum forest_transform {
    FT_IDENTITY, /* reg:squarederror, binary:logitraw */
    FT_SIGMOID,  /* binary:logistic, reg:logistic */
    FT_EXP,      /* count:poisson */
    FT_SOFTPROB, /* multi:softprob */
    FT_SOFTMAX,  /* multi:softmax: the class index */
};

struct qv_forest {
    uint32_t n_features;
    uint32_t n_groups;  /* margins per row: the class count, or 1 */
    uint32_t n_outputs; /* values per output row */
    uint32_t n_trees;   /* trees evaluated (within the range) */
    int n_rounds;
    enum forest_transform transform;
    float base_margin;
    char objective[32];
    struct fnode *nodes;   /* every tree's nodes, one after the other */
    struct ftree *trees;   /* [n_trees] */
    struct cnode *cnodes;  /* complete trees' internal nodes */
    float *cleaves;        /* complete trees' leaves */
    size_t n_nodes, n_cnodes, n_cleaves;
};

/* ---- Building ---- */

static json_t *path_get(json_t *root, const char *const *keys)
{
    for (; *keys != NULL && root != NULL; keys++)
        root = json_object_get(root, *keys);
    return root;
}

/* A number XGBoost wrote either as a JSON string ("5E-1") or a number. */
static bool json_num(json_t *v, double *out)
{
    char *end;

    if (json_is_number(v)) {
        *out = json_number_value(v);
        return true;
    }
    if (!json_is_string(v))
        return false;
    *out = strtod(json_string_value(v), &end);
    return end != json_string_value(v) && *end == '\0';
}

/* The float XGBoost wrote: parsed from its shortest decimal form, which
 * rounds back to the same float32. */
static bool json_float(json_t *v, float *out)
{
    double x;

    if (!json_num(v, &x))
        return false;
    *out = (float)x;
    return true;
}

static bool json_int_in(json_t *v, long long lo, long long hi, long long *out)
{
    double x;

    if (json_is_integer(v)) {
        *out = json_integer_value(v);
    } else {
        if (!json_num(v, &x) || x != floor(x) || x < -9e15 || x > 9e15)
            return false;
        *out = (long long)x;
    }
    return *out >= lo && *out <= hi;
}

static int objective_of(const char *name, enum forest_transform *t)
{
    static const struct {
        const char *name;
        enum forest_transform t;
    } known[] = {
        {"binary:logistic", FT_SIGMOID}, {"reg:logistic", FT_SIGMOID},
        {"binary:logitraw", FT_IDENTITY}, {"reg:squarederror", FT_IDENTITY},
        {"count:poisson", FT_EXP},        {"multi:softprob", FT_SOFTPROB},
        {"multi:softmax", FT_SOFTMAX},
    };

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(name, known[i].name) == 0) {
            *t = known[i].t;
            return QV_OK;
        }
    }
    return QV_ENOTSUP;
}

/* base_score is stored as the user gave it (a probability for the logistic
 * objectives, a mean for poisson); libxgboost 1.7 adds it in margin space,
 * after the objective's ProbToMargin, computed in float as here. For
 * binary:logitraw (whose output is the margin itself) ProbToMargin is the
 * identity: base_score is added as it is. */
static int base_margin_of(const char *objective, float base_score, float *out, struct qv_diag *d)
{
    if (strcmp(objective, "binary:logistic") == 0 || strcmp(objective, "reg:logistic") == 0) {
        if (!(base_score > 0.0f && base_score < 1.0f))
            return qv_fail(d, QV_EINVAL, "base_score %g is not in (0, 1)", (double)base_score);
        *out = -logf(1.0f / base_score - 1.0f);
    } else if (strcmp(objective, "count:poisson") == 0) {
        if (!(base_score > 0.0f))
            return qv_fail(d, QV_EINVAL, "base_score %g is not positive", (double)base_score);
        *out = logf(base_score);
    } else {
        *out = base_score;
    }
    return QV_OK;
}

/* Array `key` of tree t, of exactly n elements. */
static json_t *tree_array(json_t *t, const char *key, size_t n)
{
    json_t *a = json_object_get(t, key);

    return json_is_array(a) && json_array_size(a) == n ? a : NULL;
}

/* Appends tree t (tree number idx) to f->nodes at *at, renumbered breadth
 * first. queue and order are scratch of n entries, seen n bytes. */
static int add_tree(qv_forest *f, json_t *t, size_t idx, size_t *at, uint32_t *queue,
                    unsigned char *seen, struct qv_diag *d)
{
    json_t *tp = json_object_get(t, "tree_param");
    json_t *left, *right, *feat, *cond, *dleft, *stype, *cats;
    long long n_ll, v;
    size_t n, head = 0, tail = 0;

    if (!json_int_in(json_object_get(tp, "num_nodes"), 1, FOREST_MAX_NODES, &n_ll))
        return qv_fail(d, QV_EINVAL, "tree %zu: num_nodes missing or out of range", idx);
    n = (size_t)n_ll;
    if (json_int_in(json_object_get(tp, "size_leaf_vector"), 0, 0x7fffffff, &v) && v > 1)
        return qv_fail(d, QV_ENOTSUP, "tree %zu has vector leaves", idx);
    left = tree_array(t, "left_children", n);
    right = tree_array(t, "right_children", n);
    feat = tree_array(t, "split_indices", n);
    cond = tree_array(t, "split_conditions", n);
    dleft = tree_array(t, "default_left", n);
    if (!left || !right || !feat || !cond || !dleft)
        return qv_fail(d, QV_EINVAL, "tree %zu: node arrays missing or not of num_nodes", idx);
    stype = json_object_get(t, "split_type");
    cats = json_object_get(t, "categories_nodes");
    if (json_array_size(cats) > 0)
        return qv_fail(d, QV_ENOTSUP, "tree %zu has categorical splits", idx);
    if (stype != NULL) {
        for (size_t i = 0; i < json_array_size(stype); i++)
            if (!json_int_in(json_array_get(stype, i), 0, 0, &v))
                return qv_fail(d, QV_ENOTSUP, "tree %zu has categorical splits", idx);
    }

    memset(seen, 0, n);
    queue[tail++] = 0;
    seen[0] = 1;
    while (head < tail) {
        uint32_t old = queue[head];
        struct fnode *nd = &f->nodes[*at + head];
        long long l, r, fi, dl;

        head++;
        if (!json_int_in(json_array_get(left, old), -1, (long long)n - 1, &l) ||
            !json_int_in(json_array_get(right, old), -1, (long long)n - 1, &r) ||
            !json_float(json_array_get(cond, old), &nd->value))
            return qv_fail(d, QV_EINVAL, "tree %zu node %u: bad child or value", idx, old);
        if (l == -1) {
            nd->split = FOREST_LEAF;
            nd->left = 0;
            continue;
        }
        if (r < 1 || l < 1 || l == r || seen[l] || seen[r])
            return qv_fail(d, QV_EINVAL, "tree %zu node %u: children are not a tree", idx, old);
        if (!json_int_in(json_array_get(feat, old), 0, (long long)f->n_features - 1, &fi))
            return qv_fail(d, QV_EINVAL, "tree %zu node %u: feature index out of range", idx,
                           old);
        if (!json_int_in(json_array_get(dleft, old), 0, 1, &dl)) {
            if (!json_is_boolean(json_array_get(dleft, old)))
                return qv_fail(d, QV_EINVAL, "tree %zu node %u: bad default_left", idx, old);
            dl = json_is_true(json_array_get(dleft, old));
        }
        if (isnan(nd->value))
            return qv_fail(d, QV_EINVAL, "tree %zu node %u: threshold is NaN", idx, old);
        nd->split = (uint32_t)fi << 1 | (uint32_t)dl;
        nd->left = (uint32_t)tail;
        seen[l] = seen[r] = 1;
        queue[tail++] = (uint32_t)l;
        queue[tail++] = (uint32_t)r;
    }
    f->trees[f->n_trees].start = (uint32_t)*at;
    f->trees[f->n_trees].count = (uint32_t)tail;
    *at += tail;
    return QV_OK;
}

/* Chooses the trees to lay out complete (depth at most FOREST_MAX_COMPLETE
 * and at most about four times their own size) and builds their layout.
 * depth is scratch of the largest tree's node count. */
static void lay_out_complete(qv_forest *f, uint32_t *depth)
{
    size_t n_c = 0, n_l = 0;
    uint32_t *src = NULL;
    size_t src_cap = 0;

    for (uint32_t t = 0; t < f->n_trees; t++) {
        struct ftree *tr = &f->trees[t];
        const struct fnode *nd = f->nodes + tr->start;
        uint32_t dmax = 0;

        depth[0] = 0;
        for (uint32_t k = 0; k < tr->count; k++) {
            if (nd[k].split == FOREST_LEAF)
                continue;
            depth[nd[k].left] = depth[nd[k].left + 1] = depth[k] + 1;
            if (depth[k] + 1 > dmax)
                dmax = depth[k] + 1;
        }
        tr->depth = FOREST_WALK;
        if (dmax <= FOREST_MAX_COMPLETE && ((size_t)1 << dmax) <= 4 * (size_t)tr->count + 64) {
            tr->depth = (int)dmax;
            tr->cstart = n_c;
            tr->lstart = n_l;
            n_c += ((size_t)1 << dmax) - 1;
            n_l += (size_t)1 << dmax;
        }
    }
    f->cnodes = qv_xcalloc(n_c ? n_c : 1, sizeof(*f->cnodes));
    f->cleaves = qv_xcalloc(n_l ? n_l : 1, sizeof(*f->cleaves));
    f->n_cnodes = n_c;
    f->n_cleaves = n_l;
    for (uint32_t t = 0; t < f->n_trees; t++) {
        struct ftree *tr = &f->trees[t];
        const struct fnode *nd = f->nodes + tr->start;
        size_t inner, all;

        if (tr->depth == FOREST_WALK)
            continue;
        inner = ((size_t)1 << tr->depth) - 1;
        all = 2 * inner + 1;
        if (all > src_cap) {
            free(src);
            src = qv_xcalloc(all, sizeof(*src));
            src_cap = all;
        }
        /* src[p]: the tree node that slot p of the complete tree stands for. */
        src[0] = 0;
        for (size_t p = 0; p < inner; p++) {
            const struct fnode *s = &nd[src[p]];
            struct cnode *c = &f->cnodes[tr->cstart + p];
            if (s->split == FOREST_LEAF) {
                c->threshold = -INFINITY;
                c->split = 0; /* feature 0, missing goes right */
                src[2 * p + 1] = src[2 * p + 2] = src[p];
            } else {
                c->threshold = s->value;
                c->split = s->split;
                src[2 * p + 1] = s->left;
                src[2 * p + 2] = s->left + 1;
            }
        }
        for (size_t p = inner; p < all; p++)
            f->cleaves[tr->lstart + (p - inner)] = nd[src[p]].value;
    }
    free(src);
}

int qv_forest_build(const char *json, size_t len, struct qv_forest_range range, qv_forest **out,
                    struct qv_diag *d)
{
    static const char *const k_learner[] = {"learner", NULL};
    static const char *const k_booster[] = {"gradient_booster", "name", NULL};
    static const char *const k_obj[] = {"objective", "name", NULL};
    static const char *const k_mparam[] = {"learner_model_param", NULL};
    static const char *const k_model[] = {"gradient_booster", "model", NULL};
    json_error_t jerr;
    json_t *root = NULL, *learner, *mp, *model, *trees, *info, *v;
    qv_forest *f = NULL;
    uint32_t *queue = NULL;
    unsigned char *seen = NULL;
    long long num_class = 0, num_feature = 0, num_target = 1, n_par = 1, group;
    size_t n_trees, tb, te, total = 0, max_nodes = 1, at = 0;
    float base_score = 0.5f;
    int err = QV_OK;

    root = json_loadb(json, len, 0, &jerr);
    if (root == NULL)
        return qv_fail(d, QV_EINVAL, "model JSON: %s", jerr.text);
    learner = path_get(root, k_learner);
    v = path_get(learner, k_booster);
    if (!json_is_string(v) || strcmp(json_string_value(v), "gbtree") != 0) {
        err = qv_fail(d, QV_ENOTSUP, "booster \"%s\" is not compiled",
                      json_is_string(v) ? json_string_value(v) : "?");
        goto out;
    }
    f = qv_xcalloc(1, sizeof(*f));
    v = path_get(learner, k_obj);
    if (!json_is_string(v) || objective_of(json_string_value(v), &f->transform) != QV_OK) {
        err = qv_fail(d, QV_ENOTSUP, "objective \"%s\" is not compiled",
                      json_is_string(v) ? json_string_value(v) : "?");
        goto out;
    }
    snprintf(f->objective, sizeof(f->objective), "%s", json_string_value(v));
    mp = path_get(learner, k_mparam);
    if (!json_int_in(json_object_get(mp, "num_feature"), 1, FOREST_MAX_FEATURES, &num_feature) ||
        !json_int_in(json_object_get(mp, "num_class"), 0, FOREST_ACC, &num_class) ||
        !json_float(json_object_get(mp, "base_score"), &base_score)) {
        err = qv_fail(d, QV_EINVAL, "learner_model_param: num_feature, num_class or base_score"
                                    " missing or out of range");
        goto out;
    }
    v = json_object_get(mp, "num_target");
    if (v != NULL && (!json_int_in(v, 1, 1, &num_target))) {
        err = qv_fail(d, QV_ENOTSUP, "more than one target is not compiled");
        goto out;
    }
    f->n_features = (uint32_t)num_feature;
    f->n_groups = num_class > 1 ? (uint32_t)num_class : 1;
    f->n_outputs = f->transform == FT_SOFTMAX ? 1 : f->n_groups;
    if ((f->transform == FT_SOFTPROB || f->transform == FT_SOFTMAX) != (num_class > 1)) {
        err = qv_fail(d, QV_ENOTSUP, "objective %s with num_class %lld", f->objective, num_class);
        goto out;
    }
    err = base_margin_of(f->objective, base_score, &f->base_margin, d);
    if (err)
        goto out;

    model = path_get(learner, k_model);
    trees = json_object_get(model, "trees");
    info = json_object_get(model, "tree_info");
    v = json_object_get(json_object_get(model, "gbtree_model_param"), "num_parallel_tree");
    if (v != NULL && !json_int_in(v, 1, 1 << 20, &n_par)) {
        err = qv_fail(d, QV_EINVAL, "num_parallel_tree out of range");
        goto out;
    }
    n_trees = json_array_size(trees);
    if (!json_is_array(trees) || !json_is_array(info) || json_array_size(info) != n_trees ||
        n_trees % ((size_t)n_par * f->n_groups) != 0 || n_trees > 0x7fffffff) {
        err = qv_fail(d, QV_EINVAL, "trees and tree_info do not match the rounds");
        goto out;
    }
    f->n_rounds = (int)(n_trees / ((size_t)n_par * f->n_groups));
    if (range.begin < 0 || range.end < 0 || range.end > f->n_rounds ||
        (range.end != 0 && range.begin >= range.end) || range.begin > f->n_rounds) {
        err = qv_fail(d, QV_EINVAL, "iteration range [%d, %d) is outside the model's %d rounds",
                      range.begin, range.end, f->n_rounds);
        goto out;
    }
    tb = (size_t)range.begin * (size_t)n_par * f->n_groups;
    te = range.end == 0 ? n_trees : (size_t)range.end * (size_t)n_par * f->n_groups;

    /* Sizes first, each checked against the tree's own arrays, so that what
     * is allocated is bounded by the text's size. */
    for (size_t i = tb; i < te; i++) {
        json_t *t = json_array_get(trees, i);
        long long n;
        if (!json_int_in(json_object_get(json_object_get(t, "tree_param"), "num_nodes"), 1,
                         FOREST_MAX_NODES, &n) ||
            json_array_size(json_object_get(t, "left_children")) != (size_t)n ||
            total + (size_t)n > 0xffffffffu) {
            err = qv_fail(d, QV_EINVAL, "tree %zu: num_nodes missing or out of range", i);
            goto out;
        }
        total += (size_t)n;
        if ((size_t)n > max_nodes)
            max_nodes = (size_t)n;
    }
    f->nodes = qv_xcalloc(total ? total : 1, sizeof(*f->nodes));
    f->trees = qv_xcalloc(te - tb + 1, sizeof(*f->trees));
    queue = qv_xcalloc(max_nodes, sizeof(*queue));
    seen = qv_xcalloc(max_nodes, 1);
    for (size_t i = tb; i < te; i++) {
        if (!json_int_in(json_array_get(info, i), 0, (long long)f->n_groups - 1, &group)) {
            err = qv_fail(d, QV_EINVAL, "tree_info[%zu] is not a class", i);
            goto out;
        }
        err = add_tree(f, json_array_get(trees, i), i, &at, queue, seen, d);
        if (err)
            goto out;
        f->trees[f->n_trees++].group = (uint32_t)group;
    }
    f->n_nodes = at;
    lay_out_complete(f, queue);
    *out = f;
    f = NULL;
out:
    free(queue);
    free(seen);
    qv_forest_destroy(f);
    json_decref(root);
    return err;
}

void qv_forest_destroy(qv_forest *f)
{
    if (f == NULL)
        return;
    free(f->nodes);
    free(f->trees);
    free(f->cnodes);
    free(f->cleaves);
    free(f);
}

uint32_t qv_forest_n_features(const qv_forest *f)
{
    return f->n_features;
}

uint32_t qv_forest_n_outputs(const qv_forest *f)
{
    return f->n_outputs;
}

int qv_forest_n_rounds(const qv_forest *f)
{
    return f->n_rounds;
}

const char *qv_forest_objective(const qv_forest *f)
{
    return f->objective;
}

size_t qv_forest_memory(const qv_forest *f)
{
    return sizeof(*f) + f->n_nodes * sizeof(struct fnode) + f->n_trees * sizeof(struct ftree) +
           f->n_cnodes * sizeof(struct cnode) + f->n_cleaves * sizeof(float);
}

size_t qv_forest_splits(const qv_forest *f, uint32_t *feature, float *threshold, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; i < f->n_nodes; i++) {
        if (f->nodes[i].split == FOREST_LEAF)
            continue;
        if (n < cap) {
            feature[n] = f->nodes[i].split >> 1;
            threshold[n] = f->nodes[i].value;
        }
        n++;
    }
    return n;
}

/* ---- Evaluation ---- */

static inline float eval_tree(const struct fnode *t, const float *row)
{
    uint32_t k = 0;

    while (t[k].split != FOREST_LEAF) {
        float x = row[t[k].split >> 1];
        /* Missing goes the default way; otherwise x < threshold goes left
         * (a NaN threshold cannot occur: refused at build). */
        k = t[k].left + (isnan(x) ? (~t[k].split & 1u) : (uint32_t)!(x < t[k].value));
    }
    return t[k].value;
}

/* libxgboost's sigmoid (float, the exponent clamped so it never overflows). */
static inline float sigmoid(float x)
{
    float e = -x < 88.7f ? -x : 88.7f;

    return 1.0f / (expf(e) + 1.0f);
}

/* Margins acc [rows][n_groups] -> out [rows][n_outputs]. */
static void transform(const qv_forest *f, const float *acc, size_t rows, float *out)
{
    uint32_t g = f->n_groups;

    switch (f->transform) {
    case FT_IDENTITY:
        memcpy(out, acc, rows * g * sizeof(float));
        break;
    case FT_SIGMOID:
        for (size_t i = 0; i < rows; i++)
            out[i] = sigmoid(acc[i]);
        break;
    case FT_EXP:
        for (size_t i = 0; i < rows; i++)
            out[i] = expf(acc[i]);
        break;
    case FT_SOFTPROB:
        for (size_t i = 0; i < rows; i++) {
            const float *a = acc + i * g;
            float *o = out + i * g;
            float wmax = a[0];
            double wsum = 0.0;
            for (uint32_t c = 1; c < g; c++)
                wmax = a[c] > wmax ? a[c] : wmax;
            for (uint32_t c = 0; c < g; c++) {
                o[c] = expf(a[c] - wmax);
                wsum += o[c];
            }
            for (uint32_t c = 0; c < g; c++)
                o[c] /= (float)wsum;
        }
        break;
    case FT_SOFTMAX:
        for (size_t i = 0; i < rows; i++) {
            const float *a = acc + i * g;
            uint32_t best = 0;
            for (uint32_t c = 1; c < g; c++)
                if (a[c] > a[best])
                    best = c;
            out[i] = (float)best;
        }
        break;
    }
}

/* One complete tree over rows xb [nr][nf], adding to acc[i * g + grp]. */
static inline void eval_complete(const qv_forest *f, const struct ftree *tr, const float *xb,
                                 size_t nr, uint32_t nf, float *acc, uint32_t g)
{
    const struct cnode *c = f->cnodes + tr->cstart;
    const float *leaves = f->cleaves + tr->lstart;
    uint32_t k[FOREST_BLOCK_ROWS];
    const float *row[FOREST_BLOCK_ROWS];

    for (size_t i = 0; i < nr; i++) {
        k[i] = 0;
        row[i] = xb + i * nf;
    }
    for (int d = 0; d < tr->depth; d++) {
        for (size_t i = 0; i < nr; i++) {
            const struct cnode *n = &c[k[i]];
            float x = row[i][n->split >> 1];
            /* x >= threshold is false for NaN: missing then goes right only
             * when the default is right. */
            uint32_t right = (uint32_t)(x >= n->threshold) | ((~n->split & 1u) & (uint32_t)(x != x));
            k[i] = 2 * k[i] + 1 + right;
        }
    }
    for (size_t i = 0; i < nr; i++)
        acc[i * g + tr->group] += leaves[k[i] - ((1u << tr->depth) - 1)];
}

void qv_forest_predict(const qv_forest *f, const float *x, size_t rows, float *out)
{
    float acc[FOREST_ACC];
    uint32_t g = f->n_groups, nf = f->n_features;
    size_t block = FOREST_ACC / g < FOREST_BLOCK_ROWS ? FOREST_ACC / g : FOREST_BLOCK_ROWS;

    for (size_t r0 = 0; r0 < rows; r0 += block) {
        size_t nr = rows - r0 < block ? rows - r0 : block;
        const float *xb = x + r0 * nf;

        for (size_t i = 0; i < nr * g; i++)
            acc[i] = f->base_margin;
        for (uint32_t t = 0; t < f->n_trees; t++) {
            const struct ftree *tr = &f->trees[t];
            if (tr->depth != FOREST_WALK) {
                eval_complete(f, tr, xb, nr, nf, acc, g);
            } else {
                const struct fnode *tree = f->nodes + tr->start;
                for (size_t i = 0; i < nr; i++)
                    acc[i * g + tr->group] += eval_tree(tree, xb + i * nf);
            }
        }
        transform(f, acc, nr, out + r0 * f->n_outputs);
    }
}
