/* SPDX-License-Identifier: MIT
 *
 * backend/ubj_check.h -- checks and helpers for model artifacts before a
 * library parses them, and the artifact check the xgboost backend runs in a
 * child process (`quiver model check`).
 */
#ifndef QV_UBJ_CHECK_H
#define QV_UBJ_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "../util/util.h"

#define QV_UBJ_MAX_DEPTH 64

/* Walks a UBJSON document (as XGBoost writes it) and checks its structure
 * without building anything: every marker known, every length and count
 * non-negative and within the bytes left, nesting at most QV_UBJ_MAX_DEPTH,
 * exactly one value and nothing after it. QV_EINVAL with the offset on the
 * first violation. */
int qv_ubj_check(const unsigned char *buf, size_t len, struct qv_diag *d);

/* Reads a whole regular file of at most max bytes without blocking on FIFOs
 * or devices (O_NONBLOCK open, fstat, S_ISREG, read st_size bytes). */
int qv_artifact_read(const char *path, size_t max, unsigned char **out, size_t *len,
                     struct qv_diag *d);

/* Makes a load-failure reason safe to show: cut at the first line break,
 * control bytes and invalid UTF-8 replaced with '?'. In place. */
void qv_reason_clean(char *s);

/* The xgboost backend's artifact check (xgboost.c). */
/* Path of the executable that runs `model check`; NULL restores the default
 * ($QUIVER_BIN if set, else /proc/self/exe). */
void qv_xgb_set_checker_path(const char *path);
/* Turns the child-process check off in this process (the checker itself
 * calls this before it loads). */
void qv_xgb_check_disable(void);
/* Forgets the cached verdicts (tests). */
void qv_xgb_check_cache_clear(void);

#endif /* QV_UBJ_CHECK_H */
