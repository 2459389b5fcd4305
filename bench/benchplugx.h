/* benchplugx.h -- the little PlugX the bench clients need: encoded polls and machine-info
 * packets (sinkd's own encoder), and the length of a reply from its encrypted header. */
#ifndef SINKD_BENCH_BENCHPLUGX_H
#define SINKD_BENCH_BENCHPLUGX_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/plugx/plugx.h"

/* Total length of the packet at buf (header + comp_size), or 0 while fewer than 16 bytes are
 * there. Family A only: the bench bots speak A, and the server answers in the bot's family.
 * docs/plugx.md: header bytes 4..15 are XORed with keystream bytes 4..15. */
static inline size_t bp_packet_len(const struct plugx_config *cfg, const uint8_t *buf, size_t len)
{
    if (len < PLUGX_HEADER_SIZE) {
        return 0;
    }
    uint32_t key =
        (uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 24;
    uint8_t ks[PLUGX_HEADER_SIZE];
    plugx_keystream(cfg, PLUGX_CIPHER_A, key, ks, sizeof(ks));
    size_t comp = (size_t)(buf[8] ^ ks[8]) | (size_t)(buf[9] ^ ks[9]) << 8;
    return PLUGX_HEADER_SIZE + comp;
}

/* A poll (command 0x1000, empty body) under family A with the given key. */
static inline size_t bp_poll(const struct plugx_config *cfg, uint32_t key, uint8_t *out, size_t cap)
{
    ptrdiff_t n =
        plugx_encode(cfg, PLUGX_CIPHER_A, key, PLUGX_CMD_POLL, 0, NULL, 0, false, out, cap);
    if (n <= 0) {
        fprintf(stderr, "bench: plugx_encode(poll) failed\n");
        exit(1);
    }
    return (size_t)n;
}

/* A machine-info packet (command 0x1001) for bench bot number `bot`. */
static inline size_t bp_machine_info(const struct plugx_config *cfg, uint32_t key, uint32_t bot,
                                     uint8_t *out, size_t cap)
{
    struct plugx_machine_info info;
    memset(&info, 0, sizeof(info));
    snprintf(info.id.host, sizeof(info.id.host), "BENCH-%06u", bot);
    snprintf(info.id.user, sizeof(info.id.user), "user%u", bot % 97);
    snprintf(info.id.os, sizeof(info.id.os), "6.1.7601 SP1");
    snprintf(info.id.local_ip, sizeof(info.id.local_ip), "10.%u.%u.%u", (bot >> 16) & 255,
             (bot >> 8) & 255, bot & 255);
    snprintf(info.id.campaign, sizeof(info.id.campaign), "bench");
    snprintf(info.id.version, sizeof(info.id.version), "1.0");
    info.os_major = 6;
    info.os_minor = 1;
    info.os_build = 7601;
    info.service_pack = 1;
    info.cpu_mhz = 2400;
    info.memory_mb = 4096;
    uint8_t body[1024];
    ptrdiff_t blen = plugx_machine_info_encode(&info, body, sizeof(body));
    ptrdiff_t n = blen <= 0 ? -1
                            : plugx_encode(cfg, PLUGX_CIPHER_A, key, PLUGX_CMD_MACHINE_INFO, 0,
                                           body, (size_t)blen, false, out, cap);
    if (n <= 0) {
        fprintf(stderr, "bench: plugx_encode(machine info) failed\n");
        exit(1);
    }
    return (size_t)n;
}

#endif
