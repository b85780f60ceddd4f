/* SPDX-License-Identifier: MIT
 *
 * router/router_int.h -- private to src/router/: the parsed route document and
 * the random number helpers shared by router.c, route.c and bandit.c.
 */
#ifndef QV_ROUTER_INT_H
#define QV_ROUTER_INT_H

#include "router.h"

/* A target as written in the document, and the version it resolves to. */
struct qv__target {
    char name[QV_ROUTE_NAME_MAX]; /* label name, or the version number in decimal */
    bool is_label;
    int64_t version; /* resolved through the labels (> 0) */
};

struct qv__weighted {
    struct qv__target t;
    double weight; /* points; the weights of a route sum to 100 */
};

struct qv__shadow {
    struct qv__target t;
    double percent; /* 0..100: share of primary requests copied to the shadow */
};

struct qv__label {
    char name[QV_ROUTE_NAME_MAX];
    int64_t version;
};

enum qv__bandit_algo { QV__BANDIT_THOMPSON, QV__BANDIT_UCB1 };

/* A parsed, validated route document. Plain data: copying it with '=' is a copy. */
struct qv_route {
    enum qv_policy policy;
    int n_labels;
    struct qv__label labels[QV_ROUTE_MAX_LABELS];
    bool has_target; /* "target" (pinned) */
    struct qv__target target;
    int n_weights; /* 0: no "weights" */
    struct qv__weighted weights[QV_ROUTE_MAX_TARGETS];
    enum qv_sticky_kind sticky_kind; /* QV_STICKY_NONE: no "sticky" */
    char sticky_name[QV_ROUTE_NAME_MAX];
    int n_shadow;
    struct qv__shadow shadow[QV_ROUTE_MAX_SHADOW];
    bool has_score;
    struct qv_score_cfg score; /* defaults when !has_score */
    int n_compare;             /* 0: no "compare" */
    struct qv__target compare[QV_ROUTE_MAX_COMPARE];
    enum qv_select select;
    bool has_bandit;
    enum qv__bandit_algo bandit_algo;
    uint64_t bandit_seed;
};

/* Re-resolve every target through rt->labels, check duplicates and (with res) that
 * every referenced version is READY. QV_EINVAL + d. */
int qv__route_resolve(struct qv_route *rt, const char *model, const struct qv_resolver *res,
                      struct qv_diag *d);
/* Round weights (points, sum 100) to hundredths keeping the sum exactly 100
 * (largest remainder), so that the canonical JSON parses back to the same route. */
void qv__round_weights(double *w, int n);
/* The same weights as integers in hundredths of a point (sum 10000). */
void qv__weights_bp(const double *w, int n, uint32_t *bp);
/* True if a label name is acceptable: [A-Za-z_][A-Za-z0-9_.-]*, shorter than
 * QV_ROUTE_NAME_MAX. */
bool qv__label_name_ok(const char *name);
/* Index of label 'name' in rt->labels, or -1. */
int qv__route_find_label(const struct qv_route *rt, const char *name);
/* Field that still refers to label 'name' ("weights.canary"), or NULL. */
const char *qv__route_label_user(const struct qv_route *rt, const char *name, char *buf, size_t n);

/* ---- Test hooks of the feedback ring (router.c) ---- */

/* Replace the ring's hash key (the tests need a known one). Before any remember. */
void qv__router_feedback_set_key(qv_router *r, const struct qv_sipkey *key);
/* Length of the longest hash chain of the ring. Takes each shard's lock. */
size_t qv__router_feedback_longest_chain(qv_router *r);

/* ---- Random numbers (bandit.c) ---- */
uint64_t qv__rng_next(uint64_t *s);                   /* splitmix64 step */
double qv__rng_unit(uint64_t *s);                     /* uniform in (0, 1) */
double qv__rng_gamma(uint64_t *s, double a);          /* Gamma(a, 1), a > 0 (Marsaglia-Tsang) */
double qv__rng_beta(uint64_t *s, double a, double b); /* Beta(a, b) via two Gammas */

#endif /* QV_ROUTER_INT_H */
