/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: rollout plans (control/rollout.c qv_rollout_plan_parse). A
 * plan that parses has a canonical JSON form that parses again to the same
 * form.
 */
#include "fuzz_server.h"
#include "control/control_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qv_rollout_plan p, p2;
    struct qv_diag d = {{0}};
    char *text = malloc(size + 1), *json, *json2;

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    qv_log_set_level(QV_LOG_ERROR);
    memset(&p, 0, sizeof(p));
    if (qv_rollout_plan_parse(text, &p, &d) != QV_OK) {
        if (d.msg[0] == '\0')
            abort(); /* every refusal says why */
        free(text);
        return 0;
    }
    json = qv_rollout_plan_json(&p);
    memset(&p2, 0, sizeof(p2));
    d.msg[0] = '\0';
    if (json == NULL || qv_rollout_plan_parse(json, &p2, &d) != QV_OK) {
        fprintf(stderr, "canonical plan does not parse: %s\n%s\n", d.msg, json ? json : "");
        abort();
    }
    json2 = qv_rollout_plan_json(&p2);
    if (json2 == NULL || strcmp(json, json2) != 0) {
        fprintf(stderr, "canonical plan changed on a second parse:\n%s\n%s\n", json,
                json2 ? json2 : "(null)");
        abort();
    }
    free(json2);
    free(json);
    free(text);
    return 0;
}
