#include "default_rules.h"

static const char default_rules[] = {
#embed "../../rules/default.yaml"
    , 0
};

const char *vigil_default_rules(void)
{
    return default_rules;
}
