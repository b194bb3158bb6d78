"""How a job runs, never what it computes: the adapter glue, the command line, logs, the warm fork server,
GPU claims, and what a run checks and starts at its beginning. lmsweep.codedigest leaves this package out of
the code that identifies a result: a job's numbers are the same whichever way it ran (tests/runtime/)."""
