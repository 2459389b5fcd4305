/* rc4.c -- RC4 keystream for the PlugX RC4 family through OpenSSL's low-level RC4 API.
 *
 * Why the deprecated API: in OpenSSL 3 the EVP "RC4" cipher lives in the legacy provider, which
 * must be loaded into a library context; using the default context would change process-global
 * state behind main()'s back, and a private OSSL_LIB_CTX per call is slow and fallible. The
 * low-level RC4_set_key()/RC4() are still shipped by OpenSSL 3.0, need no provider, keep all state
 * in the caller's RC4_KEY and cannot fail. This file alone silences the deprecation warning. */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <string.h>

#include "proto/plugx/keystream.h"

void plugx_rc4_init(RC4_KEY *rc4, const uint8_t *cfg_key, size_t cfg_key_len, uint32_t key)
{
    /* Modelled (docs/plugx.md): RC4 key = configured key string || packet key (LE), keystream
     * restarted for every packet like the other families. */
    uint8_t material[64 + 4];
    size_t n = cfg_key_len > 64 ? 64 : cfg_key_len;

    memcpy(material, cfg_key, n);
    plugx_put_le32(material + n, key);
    RC4_set_key(rc4, (int)(n + 4), material);
}

void plugx_rc4_xor(RC4_KEY *rc4, const uint8_t *in, uint8_t *out, size_t n)
{
    RC4(rc4, n, in, out);
}
