/* http_post.c -- see http_post.h. */
#include "cli/http_post.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

struct reply_buf {
    struct http_reply *r;
    size_t max;
    bool too_long;
};

/* libcurl write callback: a body past the bound aborts the transfer instead of growing. */
static size_t reply_append(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct reply_buf *b = userdata;
    size_t n = size * nmemb;
    if (n > b->max - b->r->len) {
        b->too_long = true;
        return 0;
    }
    char *grown = realloc(b->r->body, b->r->len + n + 1);
    if (grown == NULL) {
        return 0;
    }
    memcpy(grown + b->r->len, ptr, n);
    b->r->body = grown;
    b->r->len += n;
    grown[b->r->len] = '\0';
    return n;
}

int http_post(const char *url, const char *content_type, const void *body, size_t len,
              long timeout_s, size_t max_reply, struct http_reply *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    CURL *curl = curl_easy_init();
    if (curl == NULL) {
        snprintf(err, errlen, "libcurl: cannot start a transfer");
        return -1;
    }
    char ctype[160], curl_err[CURL_ERROR_SIZE] = "";
    snprintf(ctype, sizeof(ctype), "Content-Type: %s", content_type);
    struct curl_slist *headers = curl_slist_append(NULL, ctype);
    struct reply_buf buf = {out, max_reply, false};
    CURLcode cc = headers == NULL ? CURLE_OUT_OF_MEMORY : CURLE_OK;
    if (cc == CURLE_OK) {
        curl_easy_setopt(curl, CURLOPT_URL, url);
        /* Only HTTP(S), no redirects followed: the request goes where the operator said. */
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, (const char *)body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)len);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout_s);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, timeout_s);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, reply_append);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &buf);
        curl_easy_setopt(curl, CURLOPT_USERAGENT, "sinkd/" SINKD_VERSION);
        cc = curl_easy_perform(curl);
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
    char *ct = NULL;
    if (curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct != NULL) {
        snprintf(out->content_type, sizeof(out->content_type), "%s", ct);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (buf.too_long || cc != CURLE_OK) {
        if (buf.too_long) {
            snprintf(err, errlen, "%s: reply longer than %zu bytes", url, max_reply);
        } else {
            snprintf(err, errlen, "%s: %s", url,
                     curl_err[0] != '\0' ? curl_err : curl_easy_strerror(cc));
        }
        http_reply_free(out);
        return -1;
    }
    return 0;
}

void http_reply_free(struct http_reply *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

bool http_post_global(bool start)
{
    if (start) {
        return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    }
    curl_global_cleanup();
    return true;
}
