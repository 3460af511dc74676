"""DAC integration: the codec model, argbind registration, export to stock DAC, compat shims, CLI."""
