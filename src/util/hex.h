/* hex.h -- lowercase hexadecimal for hashes and bot keys (the one copy the modules share). */
#ifndef SINKD_UTIL_HEX_H
#define SINKD_UTIL_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Writes 2*n lowercase hex digits and a NUL to out (2*n+1 bytes). */
void hex_encode(const uint8_t *in, size_t n, char *out);

/* Reads exactly n bytes from 2*n lowercase hex digits (what hex_encode writes: one spelling per
 * value, so a hash in a manifest cannot be written two ways); the text must hold exactly those
 * digits before its NUL. Returns 0, or -1 (out may be partly written). */
int hex_decode(const char *text, uint8_t *out, size_t n);

#endif
