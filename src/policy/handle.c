/* handle.c -- the policy in force, swapped atomically on reload; readers hold counted
 * references, so an old policy lives until its last reader lets go. */
#include "policy/policy_impl.h"
#include "util/err.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct policy_live {
    struct policy *policy;
    struct policy_rate *rate;
    _Atomic unsigned refs; /* the handle's reference plus one per acquire */
};

/* The mutex only covers "read the pointer and count a reference" and the pointer swap: a few
 * instructions, never a parse or a decision. Without it a reader could load the pointer, be
 * preempted while the writer drops the last reference, and then count a reference on freed
 * memory. */
struct policy_handle {
    pthread_mutex_t lock;
    struct policy_live *cur;
};

static void live_unref(struct policy_live *live)
{
    if (live != NULL && atomic_fetch_sub_explicit(&live->refs, 1, memory_order_acq_rel) == 1) {
        policy_rate_free(live->rate);
        policy_free(live->policy);
        free(live);
    }
}

static struct policy_live *live_new(struct policy *p, const struct policy_rate *carry)
{
    struct policy_live *live = calloc(1, sizeof(*live));
    if (live == NULL) {
        return NULL;
    }
    if (policy_rate_new(p, carry, &live->rate) != 0) {
        free(live);
        return NULL;
    }
    live->policy = p;
    atomic_init(&live->refs, 1);
    return live;
}

int policy_handle_new(struct policy *p, struct policy_handle **out, char *err, size_t errlen)
{
    if (p == NULL) {
        return err_set(err, errlen, "no policy");
    }
    struct policy_handle *h = calloc(1, sizeof(*h));
    struct policy_live *live = h != NULL ? live_new(p, NULL) : NULL;
    if (live == NULL || pthread_mutex_init(&h->lock, NULL) != 0) {
        free(live != NULL ? live->rate : NULL);
        free(live);
        free(h);
        policy_free(p);
        return err_set(err, errlen, "policy handle: out of memory");
    }
    h->cur = live;
    *out = h;
    return 0;
}

void policy_handle_free(struct policy_handle *h)
{
    if (h == NULL) {
        return;
    }
    live_unref(h->cur);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

const struct policy_live *policy_handle_acquire(struct policy_handle *h)
{
    pthread_mutex_lock(&h->lock);
    struct policy_live *live = h->cur;
    atomic_fetch_add_explicit(&live->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&h->lock);
    return live;
}

void policy_live_release(const struct policy_live *live)
{
    live_unref((struct policy_live *)live);
}

const struct policy *policy_live_policy(const struct policy_live *live)
{
    return live->policy;
}

struct policy_rate *policy_live_rate(const struct policy_live *live)
{
    return live->rate;
}

int policy_handle_replace(struct policy_handle *h, struct policy *p, char *err, size_t errlen)
{
    if (p == NULL) {
        return err_set(err, errlen, "no policy");
    }
    /* Build the new pair against the old rate state before taking the lock; workers may still
     * be moving the old buckets, so a carried bucket is at most a few tokens stale. */
    const struct policy_live *old_ref = policy_handle_acquire(h);
    struct policy_live *live = live_new(p, old_ref->rate);
    policy_live_release(old_ref);
    if (live == NULL) {
        policy_free(p);
        return err_set(err, errlen, "policy reload: out of memory; the old policy stays in force");
    }
    pthread_mutex_lock(&h->lock);
    struct policy_live *old = h->cur;
    h->cur = live;
    pthread_mutex_unlock(&h->lock);
    live_unref(old);
    return 0;
}

int policy_handle_reload_file(struct policy_handle *h, const char *path, char *err, size_t errlen)
{
    struct policy *p = NULL;
    if (policy_load_file(path, &p, err, errlen) != 0) {
        return -1; /* the old policy stays in force */
    }
    return policy_handle_replace(h, p, err, errlen);
}
