"""Where every execution is recorded (SPEC S5): one interface over SQLite, JSON Lines and memory."""
