"""Data lifecycle: the retention cleanup of an org's contacts and the server's
daily housekeeping (docs/data-lifecycle.md).

- `policy.py`: the modes, the months, an org's policy in `config.retention` and its check;
- `repository.py`: which supporters a run may touch, and the erasing statements;
- `service.py`: a run (its settings, the dry-run counts, the batches, the audit entry);
- `schedule.py`: the claims of the scheduled runs (one process runs a job at a time);
- `loop.py`: the daily jobs (ended campaigns closed, policies applied);
- `cli.py`: `proca-server retention`.
"""
