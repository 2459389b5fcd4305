/* synfilter.c -- the listener drop filter: two small eBPF programs (IPv4, IPv6) and their hash
 * maps, through the bpf() system call (glibc has no wrapper; libbpf would be a dependency for
 * four calls). */
#include "net/synfilter.h"

#include <errno.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SO_ATTACH_BPF
#define SO_ATTACH_BPF 50
#endif

enum { V4, V6, NFAMILIES };

struct synfilter {
    pthread_mutex_t mu; /* over current/n: workers add, the main loop sets */
    int map_fd[NFAMILIES];
    int prog_fd[NFAMILIES];
    uint32_t max;
    size_t n;
    struct synfilter_addr *current; /* the maps' keys, ascending: what synfilter_set diffs */
};

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

struct synfilter_addr synfilter_addr_bytes(const uint8_t *ip, size_t len)
{
    struct synfilter_addr a;
    if (len == 4) {
        memcpy(a.b, v4_mapped_prefix, 12);
        memcpy(a.b + 12, ip, 4);
    } else {
        memcpy(a.b, ip, 16);
    }
    return a;
}

int synfilter_addr_cmp(const struct synfilter_addr *a, const struct synfilter_addr *b)
{
    return memcmp(a->b, b->b, sizeof(a->b));
}

static bool is_v4(const struct synfilter_addr *a)
{
    return memcmp(a->b, v4_mapped_prefix, 12) == 0;
}

struct synfilter_addr synfilter_addr_prefix(struct synfilter_addr a)
{
    if (!is_v4(&a)) {
        memset(a.b + 8, 0, 8);
    }
    return a;
}

/* Whether a is what synfilter_addr_prefix gives: an IPv6 entry with its low 64 bits zero. */
static bool is_prefix(const struct synfilter_addr *a)
{
    static const uint8_t zero[8];
    return is_v4(a) || memcmp(a->b + 8, zero, 8) == 0;
}

/* The map key the program builds: the IPv4 source address, or the IPv6 source's /64 prefix, as
 * 32-bit words, each in host order (what BPF_LD_ABS yields). */
static size_t map_key(const struct synfilter_addr *a, uint32_t key[2])
{
    size_t words = is_v4(a) ? 1 : 2;
    const uint8_t *p = is_v4(a) ? a->b + 12 : a->b;
    for (size_t i = 0; i < words; i++, p += 4) {
        key[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    }
    return words;
}

static long sys_bpf(int cmd, union bpf_attr *attr)
{
    return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    return (struct bpf_insn){.code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm};
}

/* Loads the program for one family: r6 = skb (BPF_LD_ABS reads through it); the source address
 * as `words` 32-bit words from the network header onto the stack (for TCP the data starts at
 * the transport header, so only SKF_NET_OFF reaches the IP header: IPv4 source at 12, IPv6 at
 * 8); look it up; listed: keep 0 bytes (drop), else keep the whole segment. */
static int load_program(int map_fd, int words, int src_off, char *log, size_t loglen)
{
    struct bpf_insn prog[24];
    int n = 0;
    prog[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_6, BPF_REG_1, 0, 0);
    for (int w = 0; w < words; w++) {
        prog[n++] = insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, 0, SKF_NET_OFF + src_off + 4 * w);
        prog[n++] = insn(BPF_STX | BPF_MEM | BPF_W, BPF_REG_10, BPF_REG_0,
                         (int16_t)(-4 * words + 4 * w), 0);
    }
    prog[n++] = insn(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map_fd);
    prog[n++] = insn(0, 0, 0, 0, 0);
    prog[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0);
    prog[n++] = insn(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -4 * words);
    prog[n++] = insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem);
    prog[n++] = insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_0, 0, 2, 0);
    prog[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, -1);
    prog[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    prog[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0);
    prog[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    /* The project declares no licence; the string matters only for GPL-only helpers, and
     * map_lookup_elem is not one. */
    static const char license[] = "none declared";
    int fd = -1;
    for (int attempt = 0; attempt < 2 && fd < 0; attempt++) {
        union bpf_attr attr;
        memset(&attr, 0, sizeof(attr));
        attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
        attr.insns = (uint64_t)(uintptr_t)prog;
        attr.insn_cnt = (uint32_t)n;
        attr.license = (uint64_t)(uintptr_t)license;
        memcpy(attr.prog_name, "sinkd_synban", sizeof("sinkd_synban"));
        if (attempt == 1) { /* the verifier's reasons, only when it refused */
            log[0] = '\0';
            attr.log_buf = (uint64_t)(uintptr_t)log;
            attr.log_size = (uint32_t)loglen;
            attr.log_level = 1;
        }
        fd = (int)sys_bpf(BPF_PROG_LOAD, &attr);
    }
    return fd;
}

struct synfilter *synfilter_open(uint32_t max, char *err, size_t errlen)
{
    if (max == 0 || max > SYNFILTER_MAX_ADDRS) {
        snprintf(err, errlen, "listener filter: %u addresses is out of range", max);
        return NULL;
    }
    struct synfilter *f = calloc(1, sizeof(*f));
    struct synfilter_addr *current = calloc(max, sizeof(*current));
    if (f == NULL || current == NULL) {
        free(f);
        free(current);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&f->mu, NULL);
    f->current = current;
    f->max = max;
    for (int fam = 0; fam < NFAMILIES; fam++) {
        f->map_fd[fam] = -1;
        f->prog_fd[fam] = -1;
    }
    for (int fam = 0; fam < NFAMILIES; fam++) {
        /* IPv6 by /64: one subscriber's network, through which an attacker can rotate freely. */
        int words = fam == V4 ? 1 : 2;
        union bpf_attr attr;
        memset(&attr, 0, sizeof(attr));
        attr.map_type = BPF_MAP_TYPE_HASH;
        attr.key_size = (uint32_t)(4 * words);
        attr.value_size = sizeof(uint32_t);
        attr.max_entries = max;
        memcpy(attr.map_name, "sinkd_synban", sizeof("sinkd_synban"));
        f->map_fd[fam] = (int)sys_bpf(BPF_MAP_CREATE, &attr);
        if (f->map_fd[fam] < 0) {
            snprintf(err, errlen, "listener filter: cannot create its BPF map: %s%s",
                     strerror(errno),
                     errno == EPERM ? " (needs root or CAP_BPF when serve starts)" : "");
            synfilter_close(f);
            return NULL;
        }
        char log[2048] = "";
        f->prog_fd[fam] = load_program(f->map_fd[fam], words, fam == V4 ? 12 : 8, log, sizeof(log));
        if (f->prog_fd[fam] < 0) {
            int e = errno;
            snprintf(err, errlen, "listener filter: the kernel refused its %s program: %s%s%s",
                     fam == V4 ? "IPv4" : "IPv6", strerror(e), log[0] != '\0' ? ": " : "", log);
            synfilter_close(f);
            return NULL;
        }
    }
    return f;
}

void synfilter_close(struct synfilter *f)
{
    if (f == NULL) {
        return;
    }
    for (int fam = 0; fam < NFAMILIES; fam++) {
        if (f->prog_fd[fam] >= 0) {
            close(f->prog_fd[fam]);
        }
        if (f->map_fd[fam] >= 0) {
            close(f->map_fd[fam]);
        }
    }
    pthread_mutex_destroy(&f->mu);
    free(f->current);
    free(f);
}

int synfilter_attach(const struct synfilter *f, int fd, int family)
{
    if (family != AF_INET && family != AF_INET6) {
        return -EAFNOSUPPORT;
    }
    const int *prog = &f->prog_fd[family == AF_INET ? V4 : V6];
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, prog, sizeof(*prog)) != 0) {
        return -errno;
    }
    return 0;
}

static int map_op(const struct synfilter *f, int cmd, const struct synfilter_addr *addr)
{
    uint32_t key[2];
    size_t words = map_key(addr, key);
    uint32_t one = 1;
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_fd = (uint32_t)f->map_fd[words == 1 ? V4 : V6];
    attr.key = (uint64_t)(uintptr_t)key;
    if (cmd == BPF_MAP_UPDATE_ELEM) {
        attr.value = (uint64_t)(uintptr_t)&one;
        attr.flags = BPF_ANY;
    }
    if (sys_bpf(cmd, &attr) != 0 && !(cmd == BPF_MAP_DELETE_ELEM && errno == ENOENT)) {
        return -errno;
    }
    return 0;
}

static int cmp_addr(const void *a, const void *b)
{
    return synfilter_addr_cmp(a, b);
}

/* Whether addr is in the ascending list a[0..n). */
static bool listed(const struct synfilter_addr *a, size_t n, const struct synfilter_addr *addr)
{
    return n > 0 && bsearch(addr, a, n, sizeof(*a), cmp_addr) != NULL;
}

int synfilter_set(struct synfilter *f, const struct synfilter_addr *addrs, size_t n)
{
    if (n > f->max) {
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_prefix(&addrs[i]) || (i > 0 && synfilter_addr_cmp(&addrs[i], &addrs[i - 1]) <= 0)) {
            return -EINVAL;
        }
    }
    /* Deletions first, so the maps never need room for both sets. An update that fails leaves
     * `current` saying what the maps hold, so the next call retries it. */
    pthread_mutex_lock(&f->mu);
    int rc = 0;
    size_t kept = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (!listed(addrs, n, &f->current[i])) {
            int e = map_op(f, BPF_MAP_DELETE_ELEM, &f->current[i]);
            if (e == 0) {
                continue;
            }
            rc = e;
        }
        f->current[kept++] = f->current[i];
    }
    size_t had = kept;
    for (size_t j = 0; j < n; j++) {
        if (listed(f->current, had, &addrs[j])) {
            continue;
        }
        int e = map_op(f, BPF_MAP_UPDATE_ELEM, &addrs[j]);
        if (e != 0) {
            rc = e;
            continue;
        }
        f->current[kept++] = addrs[j];
    }
    f->n = kept;
    qsort(f->current, f->n, sizeof(*f->current), cmp_addr);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

int synfilter_add(struct synfilter *f, const struct synfilter_addr *given)
{
    struct synfilter_addr prefix = synfilter_addr_prefix(*given);
    const struct synfilter_addr *addr = &prefix;
    pthread_mutex_lock(&f->mu);
    int rc = 0;
    size_t at = 0;
    while (at < f->n && synfilter_addr_cmp(&f->current[at], addr) < 0) {
        at++;
    }
    if (at < f->n && synfilter_addr_cmp(&f->current[at], addr) == 0) {
        goto out;
    }
    /* One count over both maps, each of which could hold max: the set stays within max. */
    if (f->n >= f->max) {
        rc = -ENOSPC;
        goto out;
    }
    rc = map_op(f, BPF_MAP_UPDATE_ELEM, addr);
    if (rc == 0) {
        memmove(&f->current[at + 1], &f->current[at], (f->n - at) * sizeof(*f->current));
        f->current[at] = *addr;
        f->n++;
    }
out:
    pthread_mutex_unlock(&f->mu);
    return rc;
}

size_t synfilter_size(struct synfilter *f)
{
    pthread_mutex_lock(&f->mu);
    size_t n = f->n;
    pthread_mutex_unlock(&f->mu);
    return n;
}
