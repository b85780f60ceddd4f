/* SPDX-License-Identifier: MIT
 *
 * api/ui_assets.h -- the dashboard's static files, compiled in from web/ by
 * cmake/embed_ui.cmake (a generated C file defines the table).
 */
#ifndef QV_UI_ASSETS_H
#define QV_UI_ASSETS_H

#include <stddef.h>

struct qv_ui_asset {
    const char *name; /* "app.js": a file name in web/, no directories */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t len;
    const unsigned char *gz; /* gzip -9n of data; NULL when it would not be smaller */
    size_t gz_len;
    const char *etag;    /* "\"<sha256 prefix>\"" */
    const char *etag_gz; /* the same for the gzip representation */
};

extern const struct qv_ui_asset qv__ui_assets[];
extern const int qv__ui_n_assets;
extern const size_t qv__ui_total_bytes;

#endif /* QV_UI_ASSETS_H */
