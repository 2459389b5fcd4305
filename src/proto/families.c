/* families.c -- the family table: every protocol family sinkd speaks, found by name. */
#include <string.h>

#include "proto/plugx/plugx.h"
#include "proto/proto.h"

static const struct proto_family *const families[] = {
    &plugx_family,
};

const struct proto_family *proto_family_at(size_t i)
{
    return i < sizeof(families) / sizeof(families[0]) ? families[i] : NULL;
}

const struct proto_family *proto_family_find(const char *name)
{
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        if (strcmp(families[i]->name, name) == 0) {
            return families[i];
        }
    }
    return NULL;
}
