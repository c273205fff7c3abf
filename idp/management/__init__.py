"""Managing users, clients, keys and reading the audit log: the one service layer that the CLI and the
admin API both call, enforcing the rules the account pages enforce."""
