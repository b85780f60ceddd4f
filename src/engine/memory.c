/* SPDX-License-Identifier: MIT
 *
 * The memory budget: every loaded version is charged its artifact plus what
 * its backend reports. A load that does not fit evicts idle versions, least
 * recently used first, or is refused; one that could not fit even with every
 * evictable version gone is refused at once, evicting nothing. Evicted
 * versions load again once they fit without evicting anything.
 */
#include "engine_int.h"

#define QV_LOG_MODULE "engine"

#include <stdio.h>
#include <string.h>

/* Frees room for 'need' bytes by evicting idle READY versions, least
 * recently used first. A version that could not fit even with every evictable
 * version gone is refused at once, evicting nothing. Called with mem_mu held
 * (and ctl_mu, by the control operation that loads). */
bool qv__make_room(qv_engine *e, qv_version *loading, uint64_t need, bool may_evict, char *why,
                      size_t len)
{
    uint64_t used = atomic_load(&e->mem_used), now = qv_now_ns(), evictable = 0;

    if (used + need <= e->budget)
        return true;
    pthread_rwlock_rdlock(&e->reg_lock);
    for (int i = 0; i < e->n_models; i++) {
        struct qv_model *m = e->models[i];
        for (int k = 0; k < m->n_versions; k++) {
            qv_version *c = m->versions[k];
            if (c != loading && atomic_load(&c->state) == QV_STATE_READY &&
                atomic_load(&c->users) == 0 &&
                now - atomic_load(&c->last_used_ns) >= e->evict_idle_ns)
                evictable += atomic_load(&c->memory);
        }
    }
    pthread_rwlock_unlock(&e->reg_lock);
    if (!may_evict || used - (evictable < used ? evictable : used) + need > e->budget) {
        snprintf(why, len, "memory budget: needs %llu bytes, %llu of %llu in use%s%llu could be "
                 "evicted", (unsigned long long)need, (unsigned long long)used,
                 (unsigned long long)e->budget, may_evict ? " and only " : "; not evicting; ",
                 (unsigned long long)evictable);
        return false;
    }
    for (;;) {
        qv_version *victim = NULL;

        used = atomic_load(&e->mem_used);
        now = qv_now_ns();
        if (used + need <= e->budget)
            return true;
        pthread_rwlock_rdlock(&e->reg_lock);
        for (int i = 0; i < e->n_models; i++) {
            struct qv_model *m = e->models[i];
            for (int k = 0; k < m->n_versions; k++) {
                qv_version *c = m->versions[k];
                uint64_t last = atomic_load(&c->last_used_ns);
                if (c == loading || atomic_load(&c->state) != QV_STATE_READY ||
                    atomic_load(&c->users) > 0 || now - last < e->evict_idle_ns)
                    continue;
                if (victim == NULL || last < atomic_load(&victim->last_used_ns))
                    victim = c;
            }
        }
        if (victim)
            atomic_fetch_add(&victim->refs, 1);
        pthread_rwlock_unlock(&e->reg_lock);
        if (victim == NULL) {
            snprintf(why, len, "memory budget: needs %llu bytes, %llu of %llu in use and no idle "
                     "version to evict", (unsigned long long)need, (unsigned long long)used,
                     (unsigned long long)e->budget);
            return false;
        }
        {
            char reason[200];
            snprintf(reason, sizeof(reason), "evicted to make room for %s/%lld",
                     loading->model, (long long)loading->number);
            /* Claimed only if still READY: a reconcile thread of its model
             * may have drained or replaced it since it was picked. */
            if (qv__drain_if_ready(e, victim, reason)) {
                atomic_store(&victim->evicted_memory, atomic_load(&victim->memory));
                atomic_store(&victim->evicted, true);
                /* Idle and without users: it unloads at once. */
                if (atomic_load(&victim->users) == 0)
                    qv__unload_now(e, victim, reason);
            }
        }
        qv__version_unref(victim);
    }
}

/* Does an evicted version fit now, without evicting anything? */
bool qv__fits_now(qv_engine *e, const qv_version *v)
{
    uint64_t need = atomic_load(&v->evicted_memory), used = atomic_load(&e->mem_used);

    return used <= e->budget && need <= e->budget - used;
}
