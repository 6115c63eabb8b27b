// The rules engine (see docs/rules.md).
