"""A study: its schema (`schema`), the file and its `--set` overrides (`file`), validation of a
whole document (`validate`), and its expansion into typed groups of trials that pre-flight, the
plan and the launcher share (`plan`)."""
