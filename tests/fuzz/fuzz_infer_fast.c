/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: the one-pass KServe v2 decoder (api/infer_fast.c) against the
 * general decoder (jansson and the tensor codec). Whenever the fast decoder
 * takes a body, the general one must take it and decode the same request,
 * bit for bit (tests/fuzz/infer_fast_ref.h); any difference aborts. No
 * crash, leak or undefined behaviour on any body.
 */
#include "fuzz_server.h"
#include "infer_fast_ref.h"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why;

    if (ifr_check((const char *)data, size, &why) < 0) {
        fprintf(stderr, "fuzz_infer_fast: the decoders differ (%s) on: %.*s\n", why, (int)size,
                (const char *)data);
        abort();
    }
    return 0;
}
