/* The default ruleset (rules/default.yaml), embedded in the binary with C23 #embed. */
#ifndef VIGIL_DEFAULT_RULES_H
#define VIGIL_DEFAULT_RULES_H

/** The text of rules/default.yaml, NUL-terminated. */
const char *vigil_default_rules(void);

#endif
