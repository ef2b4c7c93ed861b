"""The `contentforge` command: the top of the house.

It composes the rest (the API, the schema runner, the workers, the scheduler, the processing demo)
and nothing imports it back. Subcommands import their heavy dependencies only when they run.
"""
