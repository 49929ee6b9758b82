"""The command line: the parser (main), each subcommand's wiring (commands), the flags generated from
the config dataclasses (args), and the tools that are only commands (sweep, prompt)."""
