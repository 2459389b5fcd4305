/* countries.c -- the officially assigned ISO 3166-1 alpha-2 codes a policy may name. */
#include "policy/policy_impl.h"

#include <string.h>

/* ISO 3166-1 alpha-2, officially assigned elements (249 codes, ISO 3166 Maintenance Agency,
 * list as of 2024), plus XK (Kosovo): user-assigned, but it is what the RIR delegation data
 * behind enrich/ (ip-location-db geo-whois-asn-country) gives Kosovo's networks. Reserved codes
 * (EU, UK, ...) and the other user-assigned codes (AA, QM-QZ, XA-XZ, ZZ) are not countries a
 * legal request can name, so a policy naming one is refused rather than matched against
 * nothing. */
static const char assigned[] =
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ "
    "BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ "
    "CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ "
    "DE DJ DK DM DO DZ "
    "EC EE EG EH ER ES ET "
    "FI FJ FK FM FO FR "
    "GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY "
    "HK HM HN HR HT HU "
    "ID IE IL IM IN IO IQ IR IS IT "
    "JE JM JO JP "
    "KE KG KH KI KM KN KP KR KW KY KZ "
    "LA LB LC LI LK LR LS LT LU LV LY "
    "MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ "
    "NA NC NE NF NG NI NL NO NP NR NU NZ "
    "OM "
    "PA PE PF PG PH PK PL PM PN PR PS PT PW PY "
    "QA "
    "RE RO RS RU RW "
    "SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ "
    "TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ "
    "UA UG UM US UY UZ "
    "VA VC VE VG VI VN VU "
    "WF WS "
    "XK "
    "YE YT "
    "ZA ZM ZW ";

bool policy_country_assigned(const char *code)
{
    if (code == NULL || strlen(code) != 2 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' ||
        code[1] > 'Z') {
        return false;
    }
    /* Entries are "XY " at offsets that are multiples of 3. */
    for (size_t i = 0; i + 2 < sizeof(assigned); i += 3) {
        if (assigned[i] == code[0] && assigned[i + 1] == code[1]) {
            return true;
        }
    }
    return false;
}
