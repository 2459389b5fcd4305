/* enrich_asn_fuzz.c -- libFuzzer harness for the ip-location-db ASN CSV line parser. */
#include "enrich/enrich.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    char err[256];
    struct enrich_asn_row row;
    for (size_t pos = 0; pos <= size;) {
        const char *nl = memchr(buf + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (buf + pos)) : size - pos;
        char *line = malloc(len ? len : 1); /* exact size: ASan catches over-reads */
        if (line == NULL) {
            return 0;
        }
        memcpy(line, buf + pos, len);
        int rc = enrich_asn_parse_line(line, len, &row, err, sizeof(err));
        if (rc == 1) {
            size_t n = row.first.family == AF_INET ? 4 : 16;
            if (row.first.family != row.last.family ||
                (row.first.family != AF_INET && row.first.family != AF_INET6) ||
                memcmp(row.first.ip, row.last.ip, n) > 0 || strlen(row.name) > ENRICH_AS_NAME_MAX) {
                abort();
            }
            for (const char *p = row.name; *p; p++) {
                if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                    abort();
                }
            }
        } else if (rc != -1 || strlen(err) == 0) {
            abort();
        }
        free(line);
        pos += len + 1;
    }
    return 0;
}
