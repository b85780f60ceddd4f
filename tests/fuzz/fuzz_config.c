/* SPDX-License-Identifier: MIT
 *
 * Fuzz target: config.json (repo/repo.c qv_model_config_parse) and the
 * "alerts" array it may carry (control/alerts.c). A config either parses or
 * fails with a message naming the key.
 */
#include "fuzz_server.h"
#include "control/control.h"
#include "repo/repo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qv_model_config cfg;
    struct qv_diag d = {{0}};
    char *text = malloc(size + 1);

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    qv_log_set_level(QV_LOG_ERROR);
    memset(&cfg, 0, sizeof(cfg));
    if (qv_model_config_parse(text, "config.json", &cfg, &d) == QV_OK) {
        struct qv_diag ad = {{0}};
        if (cfg.alerts_json != NULL && qv_control_alerts_validate(cfg.alerts_json, &ad) != QV_OK &&
            ad.msg[0] == '\0')
            abort(); /* every refusal says why */
        qv_model_config_free(&cfg);
    } else if (d.msg[0] == '\0') {
        abort();
    }
    free(text);
    return 0;
}
