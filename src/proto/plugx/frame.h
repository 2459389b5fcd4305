/* frame.h -- private to proto/plugx: header decryption and plausibility, shared by the decoder
 * and the family's detect(). */
#ifndef SINKD_PROTO_PLUGX_FRAME_H
#define SINKD_PROTO_PLUGX_FRAME_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/plugx/keystream.h"

/* Whether cipher is enabled and usable in cfg (RC4 needs a key). */
bool plugx_cipher_enabled(const struct plugx_config *cfg, int cipher);

/* Whether a command id is one PlugX is known to use (docs/plugx.md "Commands"). */
bool plugx_command_known(uint16_t command);

/* Starts ks for the key in buf[0..4) and decrypts buf[4..16) into hdr; ks is left at
 * keystream position 16. */
void plugx_header_decrypt(const struct plugx_config *cfg, int cipher, const uint8_t *buf,
                          struct plugx_ks *ks, uint8_t hdr[12]);

/* Checks a decrypted header (packet bytes 4..15). Returns 0 when plausible, else a negative
 * enum proto_error with a static reason in *why. */
/* detecting: also require a known command id (the family of a new connection is not known yet). */
int plugx_header_check(const struct plugx_config *cfg, const uint8_t hdr[12], bool detecting,
                       const char **why);

#endif
