/* http_post.h -- one HTTP(S) POST through libcurl for the commands that talk to third parties
 * (a time-stamping authority, a witness): no redirects, HTTP and HTTPS only, a timeout, and a
 * bound on the reply, so a hostile or broken server can neither redirect the request nor grow
 * memory. */
#ifndef SINKD_CLI_HTTP_POST_H
#define SINKD_CLI_HTTP_POST_H

#include <stdbool.h>
#include <stddef.h>

struct http_reply {
    long status; /* HTTP status code */
    char *body;  /* malloc'd, NUL-terminated (the NUL is not counted in len) */
    size_t len;
    char content_type[128]; /* "" if the server sent none */
};

/* Needs curl_global_init first (http_post_global). Returns 0 when a reply of at most max_reply
 * bytes arrived (whatever its status), -1 with err naming the URL otherwise. */
int http_post(const char *url, const char *content_type, const void *body, size_t len,
              long timeout_s, size_t max_reply, struct http_reply *out, char *err, size_t errlen);
void http_reply_free(struct http_reply *r);
/* curl_global_init / curl_global_cleanup, for main-like callers. */
bool http_post_global(bool start);

#endif
