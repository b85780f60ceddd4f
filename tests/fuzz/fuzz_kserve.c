/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: a KServe v2 inference request body, end to end -- JSON
 * decoding (api/infer.c, tensor/tensor_json.c), checking against the
 * model's signature, batching and running on the `test` backend, and
 * encoding the response. Every answer must be a JSON object with a status;
 * no crash, leak or undefined behaviour. Version 1 through the default route
 * and version 2 named in the URL alternate, by the body's length.
 *
 * An input that begins with "BIN:<value>\n" goes to model "b", the test
 * backend's BYTES identity, with the rest as its body and <value> (when not
 * empty) as the Inference-Header-Content-Length header: the binary tensor
 * data extension and BYTES decoding (api/binary.c, qv_bytes_check).
 */
#include "fuzz_check.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool added;
    struct fz_server *s;
    struct fz_response a;
    const char *path = size % 2 ? "/v2/models/m/versions/2/infer" : "/v2/models/m/infer";
    const char *body = (const char *)data;
    char hval[24];
    const char *hv = NULL;

    if (!added) {
        fz_server_add_model("b", "{\"features\": -1, \"echo\": \"BYTES\"}");
        added = true;
    }
    s = fz_server_get();
    if (size >= 5 && memcmp(data, "BIN:", 4) == 0) {
        const uint8_t *nl = memchr(data + 4, '\n', size - 4 < sizeof(hval) ? size - 4 : sizeof(hval));
        if (nl != NULL) {
            size_t n = (size_t)(nl - data) - 4;
            memcpy(hval, data + 4, n);
            hval[n] = '\0';
            hv = n ? hval : NULL;
            body = (const char *)nl + 1;
            size -= (size_t)(nl - data) + 1;
            path = "/v2/models/b/infer";
        }
    }
    fz_request_hdr(s, "POST", path, NULL, NULL, hv ? "Inference-Header-Content-Length" : NULL,
                   hv, body, size, &a);
    fz_check_answer("kserve", &a);
    fz_response_free(&a);
    return 0;
}
