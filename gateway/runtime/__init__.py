"""The live snapshot every request reads: the config in force and the Runtime built
from it (`live`, `snapshot`), how it is built and replaced (`reload`), and the config
file watched for changes (`watch`).

May import: core, config, ops, database, upstream, enforcement."""
