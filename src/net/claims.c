/* claims.c -- the once-per-bot rule across nodes: a send decision is claimed in the shared
 * registry (registry_claim_command) before it is recorded, by a thread of its own, since a claim
 * waits on the database and a worker's event loop must not. The worker hands the decision over,
 * holds the connection (inflight) meanwhile, and records the outcome when it comes back. */
#include "net/server_internal.h"

struct claim_req {
    struct claim_req *next;
    struct worker *w;
    struct conn *c;
    struct record rec; /* the decision, verdict send */
    int outcome;       /* registry_claim_command's: 1 ours, 0 another node's, < 0 failed */
    char holder[32];
    char err[160];
};

struct claims {
    struct server *srv;
    struct registry_claims *rc;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct claim_req *head, *tail; /* waiting for the claims thread */
    bool stop;
    uint64_t failed_logged_us;
};

static void *claims_main(void *arg)
{
    struct claims *cl = arg;
    (void)pthread_setname_np(pthread_self(), "sinkd-claims");
    pthread_mutex_lock(&cl->mu);
    for (;;) {
        while (cl->head == NULL && !cl->stop) {
            pthread_cond_wait(&cl->cv, &cl->mu);
        }
        if (cl->head == NULL) {
            break;
        }
        struct claim_req *q = cl->head;
        cl->head = q->next;
        if (cl->head == NULL) {
            cl->tail = NULL;
        }
        pthread_mutex_unlock(&cl->mu);
        const struct decision *d = &q->rec.u.decision;
        q->outcome = registry_claim_command(cl->rc, d->bot_key, d->authorisation, d->time_us,
                                            q->holder, sizeof(q->holder), q->err, sizeof(q->err));
        /* Back to its worker, whose loop records the decision. */
        struct worker *w = q->w;
        pthread_mutex_lock(&w->claims_mu);
        q->next = w->claims_done;
        w->claims_done = q;
        if (!w->claims_closed) { /* a stopped worker's is freed with it, unrecorded */
            uv_async_send(&w->claims_wake);
        }
        pthread_mutex_unlock(&w->claims_mu);
        pthread_mutex_lock(&cl->mu);
    }
    pthread_mutex_unlock(&cl->mu);
    return NULL;
}

int claims_start(struct server *srv, char *err, size_t errlen)
{
    struct claims *cl = calloc(1, sizeof(*cl));
    if (cl == NULL) {
        return err_set(err, errlen, "out of memory");
    }
    cl->srv = srv;
    if (registry_claims_open(&cl->rc, srv->cfg->registry_target, srv->cfg->node, err, errlen) !=
        0) {
        free(cl);
        return -1;
    }
    pthread_mutex_init(&cl->mu, NULL);
    pthread_cond_init(&cl->cv, NULL);
    if (pthread_create(&cl->thread, NULL, claims_main, cl) != 0) {
        registry_claims_close(cl->rc);
        pthread_mutex_destroy(&cl->mu);
        pthread_cond_destroy(&cl->cv);
        free(cl);
        return err_set(err, errlen, "cannot start the claims thread");
    }
    srv->claims = cl;
    return 0;
}

void claims_stop(struct server *srv)
{
    struct claims *cl = srv->claims;
    if (cl == NULL) {
        return;
    }
    pthread_mutex_lock(&cl->mu);
    cl->stop = true;
    /* Claims not yet made are dropped: nothing was recorded or sent for them. */
    while (cl->head != NULL) {
        struct claim_req *q = cl->head;
        cl->head = q->next;
        free(q);
    }
    cl->tail = NULL;
    pthread_cond_signal(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    pthread_join(cl->thread, NULL);
    registry_claims_close(cl->rc);
    pthread_mutex_destroy(&cl->mu);
    pthread_cond_destroy(&cl->cv);
    free(cl);
    srv->claims = NULL;
}

bool claims_submit(struct worker *w, struct conn *c, const struct record *rec)
{
    struct claims *cl = w->srv->claims;
    struct claim_req *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return false;
    }
    q->w = w;
    q->c = c;
    q->rec = *rec;
    c->inflight++; /* the bot is not answered, nor the connection freed, before its decision */
    pthread_mutex_lock(&cl->mu);
    if (cl->tail != NULL) {
        cl->tail->next = q;
    } else {
        cl->head = q;
    }
    cl->tail = q;
    pthread_cond_signal(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    return true;
}

/* Records the decision with the claim's outcome; false when the writer's ring has no room yet. */
static bool settle(struct worker *w, struct claim_req *q)
{
    struct server *srv = w->srv;
    struct decision *d = &q->rec.u.decision;
    if (q->outcome == 0) {
        /* Another node commanded this bot under this authorisation: the rule holds across
         * nodes; the local set keeps it marked so this node does not ask again. */
        d->verdict = VERDICT_ALREADY_SENT;
    } else if (q->outcome < 0) {
        /* Fail closed: no claim, no command. Unmarked, so a later presence is decided again. */
        d->verdict = VERDICT_CLAIM_FAILED;
        uint8_t pair[KEYSET_KEY];
        decided_key(d->bot_key, d->authorisation, pair);
        keyset_shared_remove(srv->sent, pair);
        uint64_t now = event_now_us();
        if (now - srv->claims->failed_logged_us >= 60000000u) {
            srv->claims->failed_logged_us = now;
            fprintf(srv->cfg->log,
                    "sinkd: remediation claim failed (nothing sent, decided again at a later "
                    "presence): %s\n",
                    q->err);
        }
    }
    return publish_decision(w, q->c, &q->rec);
}

void claims_settle(struct worker *w)
{
    pthread_mutex_lock(&w->claims_mu);
    struct claim_req *done = w->claims_done;
    w->claims_done = NULL;
    pthread_mutex_unlock(&w->claims_mu);
    /* Oldest first: the list came back newest first. */
    struct claim_req *rev = NULL;
    while (done != NULL) {
        struct claim_req *next = done->next;
        done->next = rev;
        rev = done;
        done = next;
    }
    /* Those the ring had no room for last time go first. */
    struct claim_req **tail = &w->claims_waiting;
    while (*tail != NULL) {
        tail = &(*tail)->next;
    }
    *tail = rev;
    while (w->claims_waiting != NULL) {
        struct claim_req *q = w->claims_waiting;
        if (!settle(w, q)) {
            return; /* retried at the next durability wake-up */
        }
        w->claims_waiting = q->next;
        struct conn *c = q->c;
        free(q);
        c->inflight--; /* the decision's own slot holds the connection now */
        if (c->handle_closed && c->inflight == 0) {
            conn_free(c);
        }
    }
}

void claims_worker_free(struct worker *w)
{
    struct claim_req *lists[2] = {w->claims_done, w->claims_waiting};
    for (int i = 0; i < 2; i++) {
        while (lists[i] != NULL) {
            struct claim_req *next = lists[i]->next;
            free(lists[i]);
            lists[i] = next;
        }
    }
    w->claims_done = w->claims_waiting = NULL;
}
