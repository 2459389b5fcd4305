/* enrich.c -- loading the enrichment tables all-or-nothing, looking up, describing the data
 * versions, and the lock-free handle that swaps tables on reload. */
#include "enrich/tables.h"
#include "util/err.h"
#include "util/hex.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tables are aligned so the low 16 bits of their address hold the handle's reference count. */
#define HANDLE_ALIGN ((uintptr_t)1 << 16)
#define HANDLE_COUNT ((uintptr_t)(HANDLE_ALIGN - 1))

/* ---- reading and identifying files ---- */

/* Reads a whole regular file (at most ENRICH_FILE_MAX bytes) into a NUL-terminated buffer. */
static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_set(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        err_set(err, errlen, "%s: not a regular file", path);
        return -1;
    }
    if ((uint64_t)st.st_size > ENRICH_FILE_MAX) {
        close(fd);
        err_set(err, errlen, "%s: larger than %zu bytes", path, ENRICH_FILE_MAX);
        return -1;
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *buf = malloc(size + 1);
    if (buf == NULL) {
        close(fd);
        err_set(err, errlen, "%s: out of memory", path);
        return -1;
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            free(buf);
            close(fd);
            err_set(err, errlen, "%s: %s", path, r < 0 ? strerror(e) : "file shrank");
            return -1;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[size] = '\0';
    *out = buf;
    *len = size;
    return 0;
}

static int version_ok(const char *s)
{
    if (*s == '\0') {
        return 0;
    }
    for (; *s; s++) {
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              *s == '.' || *s == '-' || *s == '+' || *s == '_')) {
            return 0;
        }
    }
    return 1;
}

/* The data package version: `.version` beside the file (scripts/deps.sh), else package.json. */
static void find_version(const char *path, char out[ENRICH_VERSION_MAX + 1])
{
    char dir[4096], file[4200];
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path) : 1;
    out[0] = '\0';
    if (dl >= sizeof(dir)) {
        return;
    }
    memcpy(dir, slash ? path : ".", dl);
    dir[dl] = '\0';
    snprintf(file, sizeof(file), "%s/.version", dir);
    FILE *f = fopen(file, "re");
    if (f != NULL) {
        char line[ENRICH_VERSION_MAX + 2] = "";
        if (fgets(line, sizeof(line), f) != NULL) {
            line[strcspn(line, "\r\n")] = '\0';
            if (version_ok(line) && strlen(line) <= ENRICH_VERSION_MAX) {
                memcpy(out, line, strlen(line) + 1);
            }
        }
        fclose(f);
        if (out[0]) {
            return;
        }
    }
    snprintf(file, sizeof(file), "%s/package.json", dir);
    json_t *pkg = json_load_file(file, 0, NULL);
    const char *v = json_string_value(json_object_get(pkg, "version"));
    if (v != NULL && version_ok(v) && strlen(v) <= ENRICH_VERSION_MAX) {
        memcpy(out, v, strlen(v) + 1);
    }
    json_decref(pkg);
}

static void add_file(struct enrich_tables *t, const char *role, const char *path,
                     const char *version, const uint8_t *data, size_t len)
{
    struct enrich_file *f = &t->files[t->n_files++];
    const char *base = strrchr(path, '/');
    snprintf(f->role, sizeof(f->role), "%s", role);
    snprintf(f->name, sizeof(f->name), "%s", base ? base + 1 : path);
    if (version != NULL) {
        snprintf(f->version, sizeof(f->version), "%s", version);
    } else if (strcmp(role, "tags") != 0) {
        find_version(path, f->version);
    }
    SHA256(data, len, f->sha256);
}

/* Combined hash over role, name and hash of each file, in load order. */
static int hash_files(struct enrich_tables *t)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; ok && i < t->n_files; i++) {
        const struct enrich_file *f = &t->files[i];
        ok = EVP_DigestUpdate(ctx, f->role, strlen(f->role) + 1) == 1 &&
             EVP_DigestUpdate(ctx, f->name, strlen(f->name) + 1) == 1 &&
             EVP_DigestUpdate(ctx, f->sha256, sizeof(f->sha256)) == 1;
    }
    ok = ok && EVP_DigestFinal_ex(ctx, t->sha256, &n) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* ---- loading ---- */

void enrich_free(struct enrich_tables *tables)
{
    if (tables == NULL) {
        return;
    }
    if (tables->has_mmdb) {
        MMDB_close(&tables->mmdb);
    }
    enrich_ranges_free(tables);
    free(tables);
}

static int load_asn(struct enrich_tables *t, const char *path, int family, const char *version,
                    char *err, size_t errlen)
{
    char *buf;
    size_t len;
    if (read_file(path, &buf, &len, err, errlen) != 0) {
        return -1;
    }
    add_file(t, family == AF_INET ? "asn4" : "asn6", path, version, (const uint8_t *)buf, len);
    int rc = enrich_asn_load(t, path, family, buf, len, err, errlen);
    free(buf);
    return rc;
}

static int load_tags(struct enrich_tables *t, const char *const *paths, char *err, size_t errlen)
{
    char *bufs[ENRICH_TAG_FILES_MAX + 1] = {0};
    size_t lens[ENRICH_TAG_FILES_MAX + 1] = {0};
    size_t n = 0;
    int rc = -1;
    while (paths != NULL && paths[n] != NULL) {
        if (n == ENRICH_TAG_FILES_MAX) {
            err_set(err, errlen, "%s: more than %d tag files", paths[n], ENRICH_TAG_FILES_MAX);
            goto out;
        }
        if (read_file(paths[n], &bufs[n], &lens[n], err, errlen) != 0) {
            goto out;
        }
        add_file(t, "tags", paths[n], NULL, (const uint8_t *)bufs[n], lens[n]);
        n++;
    }
    static const char *const none[] = {NULL};
    rc = enrich_tags_load(t, paths ? paths : none, bufs, lens, err, errlen);
out:
    for (size_t i = 0; i < n; i++) {
        free(bufs[i]);
    }
    return rc;
}

int enrich_load(struct enrich_tables **out, const struct enrich_config *cfg, char *err,
                size_t errlen)
{
    void *mem = NULL;
    *out = NULL;
    if (posix_memalign(&mem, HANDLE_ALIGN, sizeof(struct enrich_tables)) != 0) {
        return err_set(err, errlen, "enrichment tables: out of memory");
    }
    struct enrich_tables *t = mem;
    memset(t, 0, sizeof(*t));
    atomic_init(&t->refs, 0);
    if (cfg->mmdb_path != NULL) {
        if (enrich_geo_open(t, cfg->mmdb_path, err, errlen) != 0) {
            goto fail;
        }
        /* Hash the mapped bytes lookups will actually read. */
        add_file(t, "mmdb", cfg->mmdb_path, cfg->mmdb_version, t->mmdb.file_content,
                 (size_t)t->mmdb.file_size);
    }
    if (cfg->asn_v4_path != NULL &&
        load_asn(t, cfg->asn_v4_path, AF_INET, cfg->asn_version, err, errlen) != 0) {
        goto fail;
    }
    if (cfg->asn_v6_path != NULL &&
        load_asn(t, cfg->asn_v6_path, AF_INET6, cfg->asn_version, err, errlen) != 0) {
        goto fail;
    }
    if (load_tags(t, cfg->tag_paths, err, errlen) != 0) {
        goto fail;
    }
    /* Load-time structures are not needed by lookups. */
    free(t->intern);
    t->intern = NULL;
    t->intern_cap = 0;
    if (hash_files(t) != 0) {
        err_set(err, errlen, "enrichment tables: SHA-256 failed");
        goto fail;
    }
    *out = t;
    return 0;
fail:
    enrich_free(t);
    return -1;
}

/* ---- lookups ---- */

static uint32_t ip4_of(const uint8_t *ip)
{
    return (uint32_t)ip[0] << 24 | (uint32_t)ip[1] << 16 | (uint32_t)ip[2] << 8 | ip[3];
}

/* Joins the prefix set and the ASN set, skipping duplicates and tags that no longer fit (whole
 * tags only, so the result never holds a cut-off tag). Each set alone fits (checked at load). */
static void join_tags(char out[ENRICH_TAGS_MAX], const char *a, const char *b)
{
    size_t n = strlen(a);
    memcpy(out, a, n + 1);
    while (*b) {
        const char *comma = strchr(b, ',');
        size_t tl = comma ? (size_t)(comma - b) : strlen(b);
        int seen = 0;
        for (const char *p = out; *p && !seen;) {
            const char *c = strchr(p, ',');
            size_t pl = c ? (size_t)(c - p) : strlen(p);
            seen = pl == tl && memcmp(p, b, tl) == 0;
            p += pl + (c ? 1 : 0);
        }
        if (!seen && n + (n ? 1 : 0) + tl <= ENRICH_TAGS_MAX - 1) {
            if (n) {
                out[n++] = ',';
            }
            memcpy(out + n, b, tl);
            n += tl;
            out[n] = '\0';
        }
        b += tl + (comma ? 1 : 0);
    }
}

void enrich_lookup(const struct enrich_tables *t, const struct net_addr *addr,
                   struct enrich_result *out)
{
    out->cc[0] = '\0';
    out->asn = 0;
    out->as_name = "";
    out->tags[0] = '\0';
    if (t == NULL || (addr->family != AF_INET && addr->family != AF_INET6)) {
        return;
    }
    enrich_geo_country(t, addr, out->cc);
    uint32_t as, set;
    if (addr->family == AF_INET) {
        uint32_t ip = ip4_of(addr->ip);
        as = t->asn4.n ? enrich_range4_find(&t->asn4, ip) : ENRICH_NONE;
        set = t->tag4.n ? enrich_range4_find(&t->tag4, ip) : ENRICH_NONE;
    } else {
        struct u128 ip = enrich_u128_from(addr->ip);
        as = t->asn6.n ? enrich_range6_find(&t->asn6, ip) : ENRICH_NONE;
        set = t->tag6.n ? enrich_range6_find(&t->tag6, ip) : ENRICH_NONE;
    }
    const char *asn_set = "";
    if (as != ENRICH_NONE) {
        out->asn = t->as_number[as];
        out->as_name = t->pool.buf + t->as_name[as];
        size_t lo = 0, hi = t->tag_asn_n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (t->tag_asn[mid] < out->asn) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if (lo < t->tag_asn_n && t->tag_asn[lo] == out->asn) {
            asn_set = t->pool.buf + t->tag_asn_set[lo];
        }
    }
    join_tags(out->tags, set != ENRICH_NONE ? t->pool.buf + set : "", asn_set);
}

void enrich_apply(const struct enrich_tables *tables, struct contact *c)
{
    struct enrich_result r;
    enrich_lookup(tables, &c->src, &r);
    memcpy(c->cc, r.cc, sizeof(c->cc));
    c->asn = r.asn;
    memcpy(c->tags, r.tags, sizeof(c->tags));
    c->enrich_id = enrich_tables_id(tables);
}

/* ---- describing the data ---- */

uint32_t enrich_tables_id(const struct enrich_tables *t)
{
    if (t == NULL) {
        return 0;
    }
    return (uint32_t)t->sha256[0] << 24 | (uint32_t)t->sha256[1] << 16 |
           (uint32_t)t->sha256[2] << 8 | t->sha256[3];
}

void enrich_tables_sha256(const struct enrich_tables *t, uint8_t out[32])
{
    if (t == NULL) {
        memset(out, 0, 32);
        return;
    }
    memcpy(out, t->sha256, 32);
}

int enrich_tables_describe(const struct enrich_tables *t, char *out, size_t cap)
{
    size_t n = 0;
    char tmp[1];
    if (out == NULL || cap == 0) {
        out = tmp;
        cap = 1;
    }
    out[0] = '\0';
    if (t == NULL) {
        return snprintf(out, cap, "none");
    }
    /* "role=name@version:sha256hex", space-separated; "@version" only when known. */
    for (size_t i = 0; i < t->n_files; i++) {
        const struct enrich_file *f = &t->files[i];
        char hex[65];
        hex_encode(f->sha256, 32, hex);
        int w = snprintf(n < cap ? out + n : tmp, n < cap ? cap - n : 1, "%s%s=%s%s%s:%s",
                         i ? " " : "", f->role, f->name, f->version[0] ? "@" : "", f->version, hex);
        if (w < 0) {
            return -1;
        }
        n += (size_t)w;
    }
    if (n >= cap) {
        out[cap - 1] = '\0';
    }
    return (int)n;
}

void enrich_tables_stats(const struct enrich_tables *t, struct enrich_stats *s)
{
    memset(s, 0, sizeof(*s));
    if (t == NULL) {
        return;
    }
    s->cc_v4_ranges = t->cc4.n;
    s->asn_v4_ranges = t->asn4.n;
    s->asn_v6_ranges = t->asn6.n;
    s->as_entries = t->as_n;
    s->asn_overlaps = t->asn_overlaps;
    s->name_pool_bytes = t->pool.len;
    s->tag_rules = t->tag_rules;
    s->tag_v4_ranges = t->tag4.n;
    s->tag_v6_ranges = t->tag6.n;
    s->tag_asns = t->tag_asn_n;
    /* Range arrays are allocated with one slot per input line; count what is allocated. */
    s->memory_bytes = sizeof(*t) + t->pool.cap + t->as_n * 8 +
                      (t->tag4.n + t->asn4.n + t->cc4.n) * 12 + (t->asn4.index ? 65537 * 4 : 0) +
                      (t->cc4.index ? 65537 * 4 : 0) + (t->tag6.n + t->asn6.n) * 36 +
                      t->tag_asn_n * 8;
    s->mmdb_bytes = t->has_mmdb ? (size_t)t->mmdb.file_size : 0;
}

/* ---- the handle ---- */

void enrich_handle_init(struct enrich_handle *h, struct enrich_tables *tables)
{
    atomic_init(&h->word, (uintptr_t)tables);
}

/* Gives back one reference taken through h on t. While t is still current the reference is
 * still in the handle's count; once a swap has moved the count into t->refs, it is dropped there
 * and whoever drops the last one frees t. */
static void handle_put(struct enrich_handle *h, const struct enrich_tables *t)
{
    uintptr_t w = atomic_load(&h->word);
    while ((w & ~HANDLE_COUNT) == (uintptr_t)t) {
        if (atomic_compare_exchange_weak(&h->word, &w, w - 1)) {
            return;
        }
    }
    if (t == NULL) {
        return; /* a swap discarded the count taken on "no tables" */
    }
    /* Readers hold the tables as const; dropping the last reference frees them. */
    struct enrich_tables *mt = (struct enrich_tables *)t;
    if (atomic_fetch_sub(&mt->refs, 1) == 1) {
        enrich_free(mt);
    }
}

const struct enrich_tables *enrich_handle_acquire(struct enrich_handle *h)
{
    uintptr_t w = atomic_fetch_add(&h->word, 1);
    /* The handle word packs the tables pointer and a holder count (low bits) on purpose. */
    const struct enrich_tables *t =
        (const struct enrich_tables *)(w & ~HANDLE_COUNT); /* NOLINT(performance-no-int-to-ptr) */
    if (t == NULL || (w & HANDLE_COUNT) >= ENRICH_HANDLE_HOLDERS_MAX) {
        handle_put(h, t);
        return NULL;
    }
    return t;
}

void enrich_handle_release(struct enrich_handle *h, const struct enrich_tables *tables)
{
    if (tables != NULL) {
        handle_put(h, tables);
    }
}

void enrich_handle_swap(struct enrich_handle *h, struct enrich_tables *tables)
{
    uintptr_t old = atomic_exchange(&h->word, (uintptr_t)tables);
    /* The handle word packs the tables pointer and a holder count (low bits) on purpose. */
    struct enrich_tables *t =
        (struct enrich_tables *)(old & ~HANDLE_COUNT); /* NOLINT(performance-no-int-to-ptr) */
    int64_t held = (int64_t)(old & HANDLE_COUNT);
    /* refs may already be negative: readers that lost their CAS to this swap decremented it. */
    if (t != NULL && atomic_fetch_add(&t->refs, held) + held == 0) {
        enrich_free(t);
    }
}

void enrich_handle_destroy(struct enrich_handle *h)
{
    enrich_handle_swap(h, NULL);
}
