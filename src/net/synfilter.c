/* synfilter.c -- the listener drop filter: a 12-instruction eBPF program and a hash map, through
 * the bpf() system call (glibc has no wrapper; libbpf would be a dependency for four calls). */
#include "net/synfilter.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SO_ATTACH_BPF
#define SO_ATTACH_BPF 50
#endif

struct synfilter {
    pthread_mutex_t mu; /* over current/n: workers add, the main loop sets */
    int map_fd;
    int prog_fd;
    uint32_t max;
    size_t n;
    uint32_t *current; /* the map's keys, ascending: what synfilter_set diffs against */
};

static long sys_bpf(int cmd, union bpf_attr *attr)
{
    return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    return (struct bpf_insn){.code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm};
}

struct synfilter *synfilter_open(uint32_t max, char *err, size_t errlen)
{
    if (max == 0 || max > SYNFILTER_MAX_ADDRS) {
        snprintf(err, errlen, "listener filter: %u addresses is out of range", max);
        return NULL;
    }
    struct synfilter *f = calloc(1, sizeof(*f));
    uint32_t *current = calloc(max, sizeof(uint32_t));
    if (f == NULL || current == NULL) {
        free(f);
        free(current);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&f->mu, NULL);
    f->current = current;
    f->max = max;
    f->prog_fd = -1;
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_type = BPF_MAP_TYPE_HASH;
    attr.key_size = sizeof(uint32_t);
    attr.value_size = sizeof(uint32_t);
    attr.max_entries = max;
    memcpy(attr.map_name, "sinkd_synban", sizeof("sinkd_synban"));
    f->map_fd = (int)sys_bpf(BPF_MAP_CREATE, &attr);
    if (f->map_fd < 0) {
        snprintf(err, errlen, "listener filter: cannot create its BPF map: %s%s", strerror(errno),
                 errno == EPERM ? " (needs root or CAP_BPF when serve starts)" : "");
        synfilter_close(f);
        return NULL;
    }
    /* r6 = skb (LD_ABS reads through it); r0 = the IPv4 source address in host order, from the
     * network header (for TCP the data starts at the transport header, so only SKF_NET_OFF
     * reaches it); look it up; listed: keep 0 bytes (drop), else keep the whole segment. */
    const struct bpf_insn prog[] = {
        insn(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_6, BPF_REG_1, 0, 0),
        insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, 0, SKF_NET_OFF + 12),
        insn(BPF_STX | BPF_MEM | BPF_W, BPF_REG_10, BPF_REG_0, -4, 0),
        insn(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, f->map_fd),
        insn(0, 0, 0, 0, 0),
        insn(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0),
        insn(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -4),
        insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem),
        insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_0, 0, 2, 0),
        insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, -1),
        insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
        insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0),
        insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
    };
    /* The project declares no licence; the string matters only for GPL-only helpers, and
     * map_lookup_elem is not one. */
    static const char license[] = "none declared";
    char log[2048];
    for (int attempt = 0; attempt < 2 && f->prog_fd < 0; attempt++) {
        memset(&attr, 0, sizeof(attr));
        attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
        attr.insns = (uint64_t)(uintptr_t)prog;
        attr.insn_cnt = sizeof(prog) / sizeof(prog[0]);
        attr.license = (uint64_t)(uintptr_t)license;
        memcpy(attr.prog_name, "sinkd_synban", sizeof("sinkd_synban"));
        if (attempt == 1) { /* the verifier's reasons, only when it refused */
            log[0] = '\0';
            attr.log_buf = (uint64_t)(uintptr_t)log;
            attr.log_size = sizeof(log);
            attr.log_level = 1;
        }
        f->prog_fd = (int)sys_bpf(BPF_PROG_LOAD, &attr);
    }
    if (f->prog_fd < 0) {
        int e = errno;
        snprintf(err, errlen, "listener filter: the kernel refused its program: %s%s%s",
                 strerror(e), log[0] != '\0' ? ": " : "", log);
        synfilter_close(f);
        return NULL;
    }
    return f;
}

void synfilter_close(struct synfilter *f)
{
    if (f == NULL) {
        return;
    }
    if (f->prog_fd >= 0) {
        close(f->prog_fd);
    }
    if (f->map_fd >= 0) {
        close(f->map_fd);
    }
    pthread_mutex_destroy(&f->mu);
    free(f->current);
    free(f);
}

int synfilter_attach(const struct synfilter *f, int fd)
{
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &f->prog_fd, sizeof(f->prog_fd)) != 0) {
        return -errno;
    }
    return 0;
}

static int map_op(const struct synfilter *f, int cmd, uint32_t addr)
{
    uint32_t one = 1;
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_fd = (uint32_t)f->map_fd;
    attr.key = (uint64_t)(uintptr_t)&addr;
    if (cmd == BPF_MAP_UPDATE_ELEM) {
        attr.value = (uint64_t)(uintptr_t)&one;
        attr.flags = BPF_ANY;
    }
    if (sys_bpf(cmd, &attr) != 0 && !(cmd == BPF_MAP_DELETE_ELEM && errno == ENOENT)) {
        return -errno;
    }
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Whether addr is in the ascending list a[0..n). */
static bool listed(const uint32_t *a, size_t n, uint32_t addr)
{
    return n > 0 && bsearch(&addr, a, n, sizeof(*a), cmp_u32) != NULL;
}

int synfilter_set(struct synfilter *f, const uint32_t *addrs, size_t n)
{
    if (n > f->max) {
        return -EINVAL;
    }
    for (size_t i = 1; i < n; i++) {
        if (addrs[i] <= addrs[i - 1]) {
            return -EINVAL;
        }
    }
    /* Deletions first, so the map never needs room for both sets. An update that fails leaves
     * `current` saying what the map holds, so the next call retries it. */
    pthread_mutex_lock(&f->mu);
    int rc = 0;
    size_t kept = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (!listed(addrs, n, f->current[i])) {
            int e = map_op(f, BPF_MAP_DELETE_ELEM, f->current[i]);
            if (e == 0) {
                continue;
            }
            rc = e;
        }
        f->current[kept++] = f->current[i];
    }
    size_t had = kept;
    for (size_t j = 0; j < n; j++) {
        if (listed(f->current, had, addrs[j])) {
            continue;
        }
        int e = map_op(f, BPF_MAP_UPDATE_ELEM, addrs[j]);
        if (e != 0) {
            rc = e;
            continue;
        }
        f->current[kept++] = addrs[j];
    }
    f->n = kept;
    qsort(f->current, f->n, sizeof(uint32_t), cmp_u32);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

int synfilter_add(struct synfilter *f, uint32_t addr)
{
    pthread_mutex_lock(&f->mu);
    int rc = 0;
    size_t at = 0;
    while (at < f->n && f->current[at] < addr) {
        at++;
    }
    if (at < f->n && f->current[at] == addr) {
        goto out;
    }
    if (f->n >= f->max) {
        rc = -ENOSPC;
        goto out;
    }
    rc = map_op(f, BPF_MAP_UPDATE_ELEM, addr);
    if (rc == 0) {
        memmove(&f->current[at + 1], &f->current[at], (f->n - at) * sizeof(uint32_t));
        f->current[at] = addr;
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
