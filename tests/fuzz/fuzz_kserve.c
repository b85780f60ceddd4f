/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: a KServe v2 inference request body, end to end -- JSON
 * decoding (api/infer.c, tensor/tensor_json.c), checking against the
 * model's signature, batching and running on the `test` backend, and
 * encoding the response. Every answer must be a JSON object with a status;
 * no crash, leak or undefined behaviour. Version 1 through the default route
 * and version 2 named in the URL alternate, by the body's length.
 */
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_server *s = fz_server_get();
    struct fz_response a;
    const char *path = size % 2 ? "/v2/models/m/versions/2/infer" : "/v2/models/m/infer";

    fz_request(s, "POST", path, NULL, NULL, (const char *)data, size, &a);
    fz_check_answer("kserve", &a);
    fz_response_free(&a);
    return 0;
}
