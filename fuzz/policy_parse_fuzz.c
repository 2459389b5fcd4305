/* policy_parse_fuzz.c -- libFuzzer harness: policy_parse over arbitrary bytes must never crash or
 * leak; whatever loads must describe itself, pass or refuse every server environment with a
 * message, summarise itself on one line, and decide both commands without fault or unsafe send. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct policy *p = NULL;
    char err[512];
    if (policy_parse((const char *)data, size, "fuzz.ini", &p, err, sizeof(err)) != 0) {
        return 0;
    }
    free(policy_describe(p));
    /* every environment: refused with a message, or accepted and summarised */
    for (unsigned e = 0; e < 32; e++) {
        struct policy_env env = {.country_table = e & 1,
                                 .asn_table = (e >> 1) & 1,
                                 .tag_table = (e >> 2) & 1,
                                 .enforce_flag = (e >> 3) & 1,
                                 .default_uninstall_id = (e >> 4) & 1 ? 0xFD01 : 0};
        err[0] = '\0';
        if (policy_check_env(p, &env, err, sizeof(err)) != 0 && err[0] == '\0') {
            abort();
        }
        char *line = policy_summary_line(p, &env);
        if (line != NULL && strchr(line, '\n') != NULL) {
            abort(); /* one line */
        }
        free(line);
    }
    struct policy_rate *rate = NULL;
    if (policy_rate_new(p, NULL, &rate) == 0) {
        struct policy_bot bot = {.cc = "NG", .asn = 100, .tags = "hospital"};
        bot.src.family = AF_INET;
        bot.src.ip[0] = 10;
        struct policy_verdict v;
        for (uint64_t t = 0; t < 8; t++) {
            uint8_t command = t % 2 ? POLICY_COMMAND_COLLECT : POLICY_COMMAND_UNINSTALL;
            bot.rehearsed = t & 4 ? ~0ull : 0;
            policy_decide(p, command, &bot, 1720000000000000ull + t * 1000000ull, rate, true, &v);
            if (v.verdict < VERDICT_SEND || v.verdict > VERDICT_ALREADY_REHEARSED) {
                abort();
            }
            bool acts = v.verdict == VERDICT_SEND || v.verdict == VERDICT_DRY_RUN;
            if (acts != (v.command != 0) || (acts && v.command != command)) {
                abort();
            }
            /* an uninstall send always carries an id; collect never does */
            if (v.verdict == VERDICT_SEND && command == POLICY_COMMAND_UNINSTALL &&
                (v.command_id == 0 || v.command_id > POLICY_COMMAND_ID_MAX)) {
                abort();
            }
            if (command == POLICY_COMMAND_COLLECT && v.command_id != 0) {
                abort();
            }
            if (v.verdict == VERDICT_ALREADY_SENT) {
                abort(); /* nothing was ever sent to this bot */
            }
        }
        policy_rate_free(rate);
    }
    policy_free(p);
    return 0;
}
