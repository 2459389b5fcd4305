/* policy_parse_fuzz.c -- libFuzzer harness: policy_parse over arbitrary bytes must never crash or
 * leak; whatever loads must describe itself and decide without fault. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct policy *p = NULL;
    char err[512];
    if (policy_parse((const char *)data, size, "fuzz.ini", &p, err, sizeof(err)) != 0) {
        return 0;
    }
    char *text = policy_describe(p);
    free(text);
    struct policy_rate *rate = NULL;
    if (policy_rate_new(p, NULL, &rate) == 0) {
        struct policy_bot bot = {.cc = "NG", .asn = 100, .tags = "hospital"};
        bot.src.family = AF_INET;
        bot.src.ip[0] = 10;
        struct policy_verdict v;
        for (uint64_t t = 0; t < 4; t++) {
            policy_decide(p, &bot, 1720000000000000ull + t * 1000000ull, rate, true, &v);
            if (v.verdict < VERDICT_SEND || v.verdict > VERDICT_ALREADY_SENT) {
                abort();
            }
        }
        policy_rate_free(rate);
    }
    policy_free(p);
    return 0;
}
