"""Team access beyond the config file: consumers and keys from the database kept
current in the runtime (`sync`), the usage ledger (`ledger`), and the team verbs of the
command line (`cli`).

May import: core, config, database, runtime, policies."""
