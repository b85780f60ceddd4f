/* SPDX-License-Identifier: MIT
 *
 * One line per event on stderr, key=value, written with a single write(2) so
 * that lines from different threads never interleave. */
#include "util.h"

#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

static _Atomic int log_level = QV_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void qv_log_set_level(enum qv_log_level lvl)
{
    atomic_store(&log_level, (int)lvl);
}

bool qv_log_enabled(enum qv_log_level lvl)
{
    return (int)lvl >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void qv_log_(enum qv_log_level lvl, const char *module, const char *fmt, ...)
{
    char line[2048];
    char ts[32];
    va_list ap;
    int n, m;

    qv_iso8601(qv_wall_ms(), ts);
    n = snprintf(line, sizeof(line), "ts=%s level=%s module=%s ", ts, level_names[lvl], module);
    if (n < 0 || (size_t)n >= sizeof(line))
        return;
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    n += m;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* Nothing useful to do when stderr is gone. */
    }
}
