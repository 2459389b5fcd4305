/* enrich_tags_fuzz.c -- libFuzzer harness for the sector tag-file line parser (each input line). */
#include "enrich/enrich.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void check_rule(const struct enrich_tag_rule *r)
{
    size_t n = strlen(r->tag);
    if (n == 0 || n > ENRICH_TAG_LEN_MAX ||
        strspn(r->tag, "abcdefghijklmnopqrstuvwxyz0123456789_-") != n) {
        abort();
    }
    for (const char *p = r->label; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            abort();
        }
    }
    if (r->kind == ENRICH_RULE_PREFIX) {
        unsigned bits = r->cidr.family == AF_INET ? 32 : 128;
        if ((r->cidr.family != AF_INET && r->cidr.family != AF_INET6) || r->cidr.prefix > bits) {
            abort();
        }
        for (unsigned b = r->cidr.prefix; b < bits; b++) { /* host bits must be zero */
            if (r->cidr.ip[b / 8] & (0x80 >> (b % 8))) {
                abort();
            }
        }
    } else if (r->kind != ENRICH_RULE_ASN) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    char err[256];
    struct enrich_tag_rule rule;
    for (size_t pos = 0; pos <= size;) {
        const char *nl = memchr(buf + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (buf + pos)) : size - pos;
        /* Copy to an exact-size heap block so ASan sees any read past the line. */
        char *line = malloc(len ? len : 1);
        if (line == NULL) {
            return 0;
        }
        memcpy(line, buf + pos, len);
        int rc = enrich_tag_parse_line(line, len, &rule, err, sizeof(err));
        if (rc == 1) {
            check_rule(&rule);
        } else if (rc < 0 && strlen(err) == 0) {
            abort(); /* every error says why */
        } else if (rc != 0 && rc != -1) {
            abort();
        }
        free(line);
        pos += len + 1;
    }
    return 0;
}
