"""What lets several processes share one study: worker identity and liveness, Ctrl-C handling, the
settings of a study process, and SQLite in write-ahead-log mode."""
