/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: a TF Serving predict body ("instances" rows or columnar
 * "inputs"), end to end as fuzz_kserve does for KServe v2.
 *
 * An input that begins with "BYTES:" goes, without that prefix, to model
 * "b", the test backend's BYTES identity: string values and {"b64": ...}
 * decoding (tensor/tensor_json.c) and the b64 encoding of the answer.
 */
#include "fuzz_check.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool added;
    struct fz_server *s;
    struct fz_response a;
    const char *path = size % 2 ? "/v1/models/m/versions/2:predict" : "/v1/models/m:predict";
    const char *body = (const char *)data;

    if (!added) {
        fz_server_add_model("b", "{\"features\": -1, \"echo\": \"BYTES\"}");
        added = true;
    }
    s = fz_server_get();
    if (size >= 6 && memcmp(data, "BYTES:", 6) == 0) {
        body += 6;
        size -= 6;
        path = "/v1/models/b:predict";
    }
    fz_request(s, "POST", path, NULL, NULL, body, size, &a);
    fz_check_answer("tfs", &a);
    fz_response_free(&a);
    return 0;
}
