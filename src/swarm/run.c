/* run.c -- the swarm's event loop: a timer heap schedules bot sessions (session.c), each held
 * only while it is active; options, the run's set-up and its end. */
#include "swarm/engine.h"
#include "util/err.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* xorshift64* (Vigna 2016): per-run randomness for keys, ports, pauses. */
uint64_t swarm_rnd(struct engine *e)
{
    e->rng ^= e->rng >> 12;
    e->rng ^= e->rng << 25;
    e->rng ^= e->rng >> 27;
    return e->rng * 0x2545F4914F6CDD1Dull;
}

/* mean +-50% */
uint64_t swarm_jitter(struct engine *e, uint64_t mean)
{
    if (mean == 0) {
        return 0;
    }
    return mean / 2 + swarm_rnd(e) % (mean + 1);
}

static uint32_t now_ms(struct engine *e)
{
    return (uint32_t)(uv_now(&e->loop) - e->t0_ms);
}

static uint64_t now_us(void)
{
    return uv_hrtime() / 1000;
}

/* ---- scheduler: a binary min-heap of (due, bot), one entry per sleeping bot ---- */

static void heap_push(struct engine *e, uint32_t due, uint32_t bot)
{
    size_t i = e->heap_len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (e->heap[parent].due_ms <= due) {
            break;
        }
        e->heap[i] = e->heap[parent];
        i = parent;
    }
    e->heap[i] = (struct slot){due, bot};
}

static struct slot heap_pop(struct engine *e)
{
    struct slot top = e->heap[0];
    struct slot last = e->heap[--e->heap_len];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= e->heap_len) {
            break;
        }
        size_t m = (l + 1 < e->heap_len && e->heap[l + 1].due_ms < e->heap[l].due_ms) ? l + 1 : l;
        if (e->heap[m].due_ms >= last.due_ms) {
            break;
        }
        e->heap[i] = e->heap[m];
        i = m;
    }
    if (e->heap_len > 0) {
        e->heap[i] = last;
    }
    return top;
}

static void sched_cb(uv_timer_t *t);

static void sched_arm(struct engine *e)
{
    if (e->stopping || e->heap_len == 0) {
        return;
    }
    uint32_t now = now_ms(e);
    uint32_t due = e->heap[0].due_ms;
    uv_timer_start(&e->sched_timer, sched_cb, due > now ? due - now : 0, 0);
}

void swarm_schedule(struct engine *e, uint32_t bot, uint64_t delay_ms)
{
    uint64_t due = (uint64_t)now_ms(e) + delay_ms;
    if (e->stopping || due >= (uint64_t)e->o->duration_s * 1000) {
        return; /* would fall after the end of the run */
    }
    heap_push(e, (uint32_t)due, bot);
    sched_arm(e);
}

/* Starts a connection for bot, or queues it until a slot is free (--concurrency). */
static void dispatch(struct engine *e, uint32_t bot)
{
    if (e->active < e->o->concurrency) {
        swarm_conn_start(e, bot);
    } else {
        e->waitq[(e->wq_head + e->wq_len) % e->o->bots] = bot;
        e->wq_len++;
    }
}

void swarm_slot_freed(struct engine *e)
{
    while (!e->stopping && e->wq_len > 0 && e->active < e->o->concurrency) {
        uint32_t bot = e->waitq[e->wq_head];
        e->wq_head = (e->wq_head + 1) % e->o->bots;
        e->wq_len--;
        swarm_conn_start(e, bot);
    }
}

static void sched_cb(uv_timer_t *t)
{
    struct engine *e = t->data;
    uint32_t now = now_ms(e);
    /* bounded: each bot has at most one entry */
    while (!e->stopping && e->heap_len > 0 && e->heap[0].due_ms <= now) {
        struct slot s = heap_pop(e);
        dispatch(e, s.bot);
    }
    sched_arm(e);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static void stop_all(struct engine *e)
{
    if (e->stopping) {
        return;
    }
    e->stopping = true;
    e->wq_len = 0;
    uv_timer_stop(&e->sched_timer);
    uv_close((uv_handle_t *)&e->sched_timer, NULL);
    uv_close((uv_handle_t *)&e->end_timer, NULL);
    uv_close((uv_handle_t *)&e->sigint, NULL);
    uv_close((uv_handle_t *)&e->sigterm, NULL);
    while (e->conns != NULL) {
        swarm_conn_finish(e->conns, OUT_STOP); /* unlinks itself */
    }
}

static void end_cb(uv_timer_t *t)
{
    stop_all(t->data);
}

static void signal_cb(uv_signal_t *s, int signum)
{
    (void)signum;
    stop_all(s->data);
}

void swarm_options_default(struct swarm_options *o)
{
    memset(o, 0, sizeof(*o));
    o->bots = 100;
    o->duration_s = 60;
    o->concurrency = 0;
    net_cidr_parse("127.0.1.0/24", &o->source_net, NULL, 0);
    o->seed = 1;
    o->heartbeat_ms = 2000;
    o->gone_share = 0.1;
    o->cipher = PLUGX_CIPHER_A;
    o->http_form = SWARM_HTTP_FORM_BODY;
    o->header_names = SWARM_NAMES_MIX;
    o->header_uri = SWARM_URI_HEX24;
    o->header_values = SWARM_VALUES_SEQUENCE;
    o->header_answer = SWARM_ANSWER_BODY;
    o->unknown_wait_ms = SWARM_UNKNOWN_WAIT_MS;
    struct plugx_config pcfg;
    plugx_config_default(&pcfg);
    o->uninstall_command = pcfg.uninstall_command != 0 ? pcfg.uninstall_command : -1;
}

void swarm_options_preset_worm(struct swarm_options *o)
{
    /* docs/swarm.md "--preset worm" says what each figure rests on (mostly: nothing firmer
     * than "the first sinkhole saw a continuous flow of HTTP requests"). */
    o->http_share = 0.8;
    o->http_form = SWARM_HTTP_FORM_MIX;
    o->unknown_share = 0.02;
    /* cipher stays one family (A unless --cipher): the worm is one build, and a check-in
     * reveals no family, so a server answers it in the one it is configured with */
}

void swarm_summary_free(struct swarm_summary *s)
{
    free(s->per_country);
    s->per_country = NULL;
    s->countries = 0;
}

static int setup_sources(struct engine *e, char *err, size_t errlen)
{
    const struct net_cidr *sn = &e->o->source_net;
    if (sn->family != AF_INET || e->o->target.family != AF_INET) {
        e->bind_source = false; /* IPv6 target: let the kernel pick ::1 */
        return 0;
    }
    if (sn->ip[0] != 127) {
        return err_set(err, errlen, "--source-net must be inside 127.0.0.0/8");
    }
    uint32_t base = ((uint32_t)sn->ip[0] << 24) | ((uint32_t)sn->ip[1] << 16) |
                    ((uint32_t)sn->ip[2] << 8) | sn->ip[3];
    uint64_t hosts = 1ull << (32 - sn->prefix);
    if (sn->prefix <= 30) { /* skip the network and broadcast addresses */
        base += 1;
        hosts -= 2;
    }
    if (hosts > (1u << 20)) {
        hosts = 1u << 20;
    }
    e->src_base = base;
    e->src_hosts = (uint32_t)hosts;
    e->bind_source = true;
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static uint32_t distinct(uint32_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_u32);
    uint32_t d = 0;
    for (size_t i = 0; i < n; i++) {
        d += i == 0 || v[i] != v[i - 1];
    }
    return d;
}

/* The distinct public addresses of the bots that got a reply (decodable) and of the unknown
 * bots run: what a server counting by source address should have counted. */
static int count_addresses(struct engine *e, const struct swarm_options *o,
                           const struct swarm_countries *countries,
                           const struct swarm_ranges *ranges, struct swarm_summary *out)
{
    uint32_t *replied = malloc((size_t)o->bots * sizeof(uint32_t));
    uint32_t *unknown = malloc((size_t)o->bots * sizeof(uint32_t));
    size_t nr = 0, nu = 0;
    if (replied == NULL || unknown == NULL) {
        free(replied);
        free(unknown);
        return -1;
    }
    for (uint32_t i = 0; i < o->bots; i++) {
        if (!(e->flags[i] & BOT_RUN)) {
            continue;
        }
        struct swarm_bot b;
        swarm_bot_make(o, countries, ranges, i, &b);
        if (b.kind == SWARM_KIND_UNKNOWN) {
            unknown[nu++] = b.public_ip;
        } else if (e->flags[i] & BOT_REPLIED) {
            replied[nr++] = b.public_ip;
        }
    }
    out->addresses_replied = distinct(replied, nr);
    out->addresses_unknown = distinct(unknown, nu);
    free(replied);
    free(unknown);
    return 0;
}

int swarm_run(const struct swarm_options *o, const struct swarm_countries *countries,
              const struct swarm_ranges *ranges, struct swarm_summary *out, char *err,
              size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (o->bots == 0 || o->bots > SWARM_MAX_BOTS || o->concurrency == 0 ||
        o->concurrency > SWARM_MAX_CONCURRENCY || o->duration_s == 0 || o->unknown_wait_ms == 0 ||
        o->http_form > SWARM_HTTP_FORM_MIX || o->header_names > SWARM_NAMES_MIX ||
        o->header_uri > SWARM_URI_MIX || o->header_values > SWARM_VALUES_FIRST ||
        o->header_answer > SWARM_ANSWER_NONE || o->uninstall_command > 0xFFFF) {
        err_set(err, errlen, "swarm: an option is outside its range (docs/swarm.md)");
        return SWARM_E_CONFIG;
    }
    for (size_t i = 0; i < countries->count; i++) {
        if (swarm_ranges_size(ranges, countries->items[i].cc) == 0) {
            err_set(err, errlen, "country '%s' has no address ranges", countries->items[i].cc);
            return SWARM_E_CONFIG;
        }
    }
    struct engine *e = calloc(1, sizeof(*e));
    int rc = SWARM_E_NOMEM;
    if (e == NULL) {
        return err_set(err, errlen, "swarm: out of memory"), SWARM_E_NOMEM;
    }
    e->o = o;
    e->countries = countries;
    e->ranges = ranges;
    e->sum = out;
    e->rng = o->seed * 0x9E3779B97F4A7C15ull + 0x1234567ull;
    if (e->rng == 0) {
        e->rng = 1;
    }
    plugx_config_default(&e->pcfg);
    char ip[NET_ADDR_STRLEN];
    net_addr_format_ip(&o->target, ip);
    snprintf(e->host, sizeof(e->host), "%s%s%s:%u", o->target.family == AF_INET6 ? "[" : "", ip,
             o->target.family == AF_INET6 ? "]" : "", (unsigned)o->target.port);
    e->flags = calloc(o->bots, 1);
    e->heap = calloc(o->bots, sizeof(*e->heap));
    e->waitq = calloc(o->bots, sizeof(*e->waitq));
    out->per_country = calloc(countries->count, sizeof(*out->per_country));
    if (e->flags == NULL || e->heap == NULL || e->waitq == NULL || out->per_country == NULL) {
        err_set(err, errlen, "swarm: out of memory for %u bots", o->bots);
        goto done;
    }
    out->countries = countries->count;
    for (size_t i = 0; i < countries->count; i++) {
        memcpy(out->per_country[i].cc, countries->items[i].cc, 3);
    }
    out->bots = o->bots;
    rc = setup_sources(e, err, errlen);
    if (rc != 0) {
        rc = SWARM_E_CONFIG;
        goto done;
    }
    int uvrc = uv_loop_init(&e->loop);
    if (uvrc < 0) {
        err_set(err, errlen, "swarm: uv_loop_init: %s", uv_strerror(uvrc));
        rc = SWARM_E_RUNTIME;
        goto done;
    }
    e->t0_ms = uv_now(&e->loop);
    e->t0_us = now_us();
    uv_timer_init(&e->loop, &e->sched_timer);
    uv_timer_init(&e->loop, &e->end_timer);
    uv_signal_init(&e->loop, &e->sigint);
    uv_signal_init(&e->loop, &e->sigterm);
    e->sched_timer.data = e->end_timer.data = e->sigint.data = e->sigterm.data = e;
    uv_signal_start(&e->sigint, signal_cb, SIGINT);
    uv_signal_start(&e->sigterm, signal_cb, SIGTERM);
    uv_timer_start(&e->end_timer, end_cb, (uint64_t)o->duration_s * 1000, 0);
    for (uint32_t i = 0; i < o->bots; i++) {
        struct swarm_bot b;
        swarm_bot_make(o, countries, ranges, i, &b);
        heap_push(e, b.start_ms, i);
    }
    sched_arm(e);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    uv_walk(&e->loop, close_walk, NULL); /* nothing should be left; be safe */
    uv_run(&e->loop, UV_RUN_DEFAULT);
    uv_loop_close(&e->loop);
    out->duration_s = (double)(now_us() - e->t0_us) / 1e6;
    if (count_addresses(e, o, countries, ranges, out) != 0) {
        err_set(err, errlen, "swarm: out of memory counting %u bots' addresses", o->bots);
        rc = SWARM_E_NOMEM;
        goto done;
    }
    rc = 0;
done:
    if (rc != 0) {
        swarm_summary_free(out);
    }
    free(e->flags);
    free(e->heap);
    free(e->waitq);
    free(e);
    return rc;
}
