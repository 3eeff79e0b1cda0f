"""The prediction store: schema, migrations, the writer and its spool, stats, backup, API keys, model metrics."""
