/* http_form.c -- PlugX's HTTP header-form check-in, recognised from a parsed request: the shape
 * public IDS rules describe (docs/plugx.md "HTTP forms"), as a pure function over the request. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proto/plugx/plugx.h"
#include "util/err.h"

/* The named header sets builds use, in the order the bot sends them. */
static const char *const named_sets[][PLUGX_HTTP_VALUES] = {
    {"X-Session", "X-Status", "X-Size", "X-Sn"},
    {"HHV1", "HHV2", "HHV3", "HHV4"},
};

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

/* "/<24 hex>" (current builds) or "/update?id=<8 hex>" (older builds); the id is copied. */
static int url_form(const char *url, char id[PLUGX_HTTP_ID_MAX + 1])
{
    static const char older[] = "/update?id=";
    size_t len = strlen(url);
    if (len == 25 && url[0] == '/' && all_hex(url + 1, 24)) {
        memcpy(id, url + 1, 24);
        id[24] = '\0';
        return PLUGX_HTTP_URL_HEX24;
    }
    if (len == sizeof(older) - 1 + 8 && strncasecmp(url, older, sizeof(older) - 1) == 0 &&
        all_hex(url + sizeof(older) - 1, 8)) {
        memcpy(id, url + sizeof(older) - 1, 8);
        id[8] = '\0';
        return PLUGX_HTTP_URL_UPDATE_ID;
    }
    return 0;
}

/* A decimal value of at most 10 digits that fits 32 bits; hex and signs are not what bots send. */
static bool parse_value(const char *s, uint32_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 10) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

static const struct proto_http_header *find_header(const struct proto_http_request *req,
                                                   const char *name, size_t *at)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->headers[i].name, name) == 0) {
            *at = i;
            return &req->headers[i];
        }
    }
    return NULL;
}

/* One of the named sets, all four present, in the bot's order. */
static int named_set(const struct proto_http_request *req, struct plugx_http_checkin *out)
{
    for (size_t s = 0; s < sizeof(named_sets) / sizeof(named_sets[0]); s++) {
        size_t prev = 0;
        size_t found = 0;
        for (size_t k = 0; k < PLUGX_HTTP_VALUES; k++) {
            size_t at;
            const struct proto_http_header *h = find_header(req, named_sets[s][k], &at);
            if (h == NULL || (k > 0 && at <= prev) || !parse_value(h->value, &out->values[k])) {
                break;
            }
            prev = at;
            found++;
        }
        if (found == PLUGX_HTTP_VALUES) {
            out->names = (uint8_t)(s == 0 ? PLUGX_HTTP_NAMES_X : PLUGX_HTTP_NAMES_HHV);
            snprintf(out->name_stem, sizeof(out->name_stem), "%s", named_sets[s][0]);
            return 1;
        }
    }
    return 0;
}

/* Four consecutive headers "<stem><d>" .. "<stem><d+3>" (d 0 or 1) with decimal values: the
 * "one common name followed by a digit" builds (ET Open sid 2018169 matches the digit 0..4). */
static int digit_set(const struct proto_http_request *req, struct plugx_http_checkin *out)
{
    for (size_t i = 0; i + PLUGX_HTTP_VALUES <= req->nheaders; i++) {
        const char *first = req->headers[i].name;
        size_t stem = strlen(first);
        if (stem < 2 || stem > sizeof(out->name_stem) || !isdigit((unsigned char)first[stem - 1])) {
            continue;
        }
        stem--;
        int d0 = first[stem] - '0';
        if (d0 > 1) {
            continue;
        }
        size_t k = 0;
        for (; k < PLUGX_HTTP_VALUES; k++) {
            const struct proto_http_header *h = &req->headers[i + k];
            if (strlen(h->name) != stem + 1 || strncasecmp(h->name, first, stem) != 0 ||
                h->name[stem] - '0' != d0 + (int)k || !parse_value(h->value, &out->values[k])) {
                break;
            }
        }
        if (k == PLUGX_HTTP_VALUES) {
            out->names = PLUGX_HTTP_NAMES_DIGIT;
            snprintf(out->name_stem, sizeof(out->name_stem), "%.*s", (int)stem, first);
            return 1;
        }
    }
    return 0;
}

int plugx_http_checkin_parse(const struct proto_http_request *req, struct plugx_http_checkin *out,
                             char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (strcmp(req->method, "POST") != 0) {
        return err_set(err, errlen, "HTTP %s is not a plugx check-in (bots POST)", req->method);
    }
    out->url = (uint8_t)url_form(req->url, out->id);
    if (out->url == 0) {
        return err_set(err, errlen, "HTTP POST to a path that is not a plugx check-in");
    }
    if (named_set(req, out) == 0 && digit_set(req, out) == 0) {
        return err_set(err, errlen, "HTTP POST %s without the four plugx check-in headers",
                       out->url == PLUGX_HTTP_URL_HEX24 ? "/<24 hex>" : "/update?id=<8 hex>");
    }
    return 0;
}

int plugx_http_checkin_text(const struct plugx_http_checkin *in, char *out, size_t cap)
{
    static const char *const suffix[] = {"Session", "Status", "Size", "Sn"};
    int n = snprintf(out, cap, "%s %s\n", in->url == PLUGX_HTTP_URL_HEX24 ? "hex24" : "update-id",
                     in->id);
    for (size_t k = 0; k < PLUGX_HTTP_VALUES && n >= 0 && (size_t)n < cap; k++) {
        char name[PLUGX_HTTP_STEM_MAX + 12];
        if (in->names == PLUGX_HTTP_NAMES_X) {
            snprintf(name, sizeof(name), "X-%s", suffix[k]);
        } else if (in->names == PLUGX_HTTP_NAMES_HHV) {
            snprintf(name, sizeof(name), "HHV%zu", k + 1);
        } else {
            snprintf(name, sizeof(name), "%s#%zu", in->name_stem, k);
        }
        n += snprintf(out + n, cap - (size_t)n, "%s: %u\n", name, in->values[k]);
    }
    return n < 0 || (size_t)n >= cap ? -1 : n;
}
