/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: a TF Serving predict body ("instances" rows or columnar
 * "inputs"), end to end as fuzz_kserve does for KServe v2.
 */
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_server *s = fz_server_get();
    struct fz_response a;
    const char *path = size % 2 ? "/v1/models/m/versions/2:predict" : "/v1/models/m:predict";

    fz_request(s, "POST", path, NULL, NULL, (const char *)data, size, &a);
    fz_check_answer("tfs", &a);
    fz_response_free(&a);
    return 0;
}
