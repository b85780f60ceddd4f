/* SPDX-License-Identifier: MIT
 *
 * A small closed-loop gRPC load generator over gRPC's C core (the library
 * quiver serves with): CONC calls kept in flight on CHANNELS connections,
 * each answered call replaced by a new one, for SECONDS; one prebuilt
 * request message (a file of protobuf bytes) sent to one method. Prints one
 * line, as bench/run.sh's rows read them:
 *
 *   BENCH rps=... p50_us=... p99_us=... ok=... errors=... first_error=CODE
 *
 *   grpc_load HOST:PORT METHOD MESSAGE_FILE CONC CHANNELS SECONDS
 *
 * Build: cc -O2 bench/grpc_load.c $(pkg-config --cflags --libs grpc) -o grpc_load
 */
#define _GNU_SOURCE
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SAMPLES (1u << 24)
#define POLL_THREADS 2

struct slot {
    grpc_call *call;
    grpc_metadata_array md, trailer;
    grpc_byte_buffer *resp;
    grpc_status_code status;
    grpc_slice details;
    uint64_t t0;
    int channel;
};

static grpc_channel **channels;
static grpc_completion_queue *cq;
static grpc_slice method, message;
static uint64_t end_ns;
static uint32_t *samples; /* latencies, microseconds */
static _Atomic uint64_t n_samples, n_errors, n_ok;
static _Atomic int first_error = -1, outstanding;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void start(struct slot *s)
{
    grpc_op ops[6];
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&message, 1);

    memset(ops, 0, sizeof(ops));
    grpc_metadata_array_init(&s->md);
    grpc_metadata_array_init(&s->trailer);
    s->resp = NULL;
    s->call = grpc_channel_create_call(channels[s->channel], NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                       method, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &s->resp;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &s->trailer;
    ops[5].data.recv_status_on_client.status = &s->status;
    ops[5].data.recv_status_on_client.status_details = &s->details;
    s->t0 = now_ns();
    if (grpc_call_start_batch(s->call, ops, 6, s, NULL) != GRPC_CALL_OK) {
        fprintf(stderr, "grpc_load: cannot start a call\n");
        exit(1);
    }
    grpc_byte_buffer_destroy(bb); /* the core took its own reference */
}

static void *poll_main(void *arg)
{
    (void)arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        struct slot *s;
        uint64_t t;

        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            return NULL;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        s = ev.tag;
        t = now_ns();
        if (ev.success && s->status == GRPC_STATUS_OK && s->resp != NULL) {
            uint64_t i = atomic_fetch_add(&n_samples, 1);
            if (i < MAX_SAMPLES)
                samples[i] = (uint32_t)((t - s->t0) / 1000);
            atomic_fetch_add(&n_ok, 1);
        } else {
            int none = -1;
            atomic_fetch_add(&n_errors, 1);
            atomic_compare_exchange_strong(&first_error, &none, (int)s->status);
        }
        if (s->resp)
            grpc_byte_buffer_destroy(s->resp);
        grpc_slice_unref(s->details);
        grpc_metadata_array_destroy(&s->md);
        grpc_metadata_array_destroy(&s->trailer);
        grpc_call_unref(s->call);
        if (t < end_ns)
            start(s); /* still outstanding: the count stays */
        else
            atomic_fetch_sub(&outstanding, 1);
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    pthread_t th[POLL_THREADS];
    struct slot *slots;
    grpc_channel_credentials *creds;
    grpc_arg arg;
    grpc_channel_args args;
    int conc, n_ch, secs;
    uint64_t t_start, n, elapsed;
    FILE *f;
    char *buf;
    long len;

    if (argc != 7) {
        fprintf(stderr, "usage: grpc_load HOST:PORT METHOD MESSAGE_FILE CONC CHANNELS SECONDS\n");
        return 2;
    }
    conc = atoi(argv[4]);
    n_ch = atoi(argv[5]);
    secs = atoi(argv[6]);
    if (conc < 1 || n_ch < 1 || secs < 1)
        return 2;
    f = fopen(argv[3], "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0) {
        fprintf(stderr, "grpc_load: cannot read %s\n", argv[3]);
        return 1;
    }
    rewind(f);
    buf = malloc((size_t)len + 1);
    if (buf == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len)
        return 1;
    fclose(f);
    samples = malloc(sizeof(uint32_t) * MAX_SAMPLES);
    slots = calloc((size_t)conc, sizeof(*slots));
    channels = calloc((size_t)n_ch, sizeof(*channels));
    if (samples == NULL || slots == NULL || channels == NULL)
        return 1;

    grpc_init();
    message = grpc_slice_from_copied_buffer(buf, (size_t)len);
    method = grpc_slice_from_copied_string(argv[2]);
    cq = grpc_completion_queue_create_for_next(NULL);
    /* One TCP connection per channel, as wrk opens one per connection. */
    arg.type = GRPC_ARG_INTEGER;
    arg.key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
    arg.value.integer = 1;
    args.num_args = 1;
    args.args = &arg;
    creds = grpc_insecure_credentials_create();
    for (int i = 0; i < n_ch; i++)
        channels[i] = grpc_channel_create(argv[1], creds, &args);
    grpc_channel_credentials_release(creds);

    t_start = now_ns();
    end_ns = t_start + (uint64_t)secs * 1000000000ull;
    atomic_store(&outstanding, conc);
    for (int i = 0; i < conc; i++) {
        slots[i].channel = i % n_ch;
        start(&slots[i]);
    }
    for (int i = 0; i < POLL_THREADS; i++)
        pthread_create(&th[i], NULL, poll_main, NULL);
    while (atomic_load(&outstanding) > 0) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    elapsed = now_ns() - t_start;
    grpc_completion_queue_shutdown(cq);
    for (int i = 0; i < POLL_THREADS; i++)
        pthread_join(th[i], NULL);
    grpc_completion_queue_destroy(cq);
    for (int i = 0; i < n_ch; i++)
        grpc_channel_destroy(channels[i]);

    n = atomic_load(&n_samples);
    if (n > MAX_SAMPLES)
        n = MAX_SAMPLES;
    qsort(samples, (size_t)n, sizeof(uint32_t), cmp_u32);
    printf("BENCH rps=%.0f p50_us=%u p99_us=%u ok=%llu errors=%llu first_error=%d\n",
           (double)atomic_load(&n_ok) * 1e9 / (double)elapsed,
           n ? samples[n / 2] : 0, n ? samples[n * 99 / 100] : 0,
           (unsigned long long)atomic_load(&n_ok), (unsigned long long)atomic_load(&n_errors),
           atomic_load(&first_error));
    grpc_slice_unref(message);
    grpc_slice_unref(method);
    grpc_shutdown();
    free(samples);
    free(slots);
    free(channels);
    free(buf);
    return 0;
}
